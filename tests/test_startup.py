"""Quiet TensorFlow start-up: benign C++ chatter hidden, genuine errors and failed imports shown.

conftest.py has already imported TensorFlow in this process, so imports are tested in fresh
subprocesses; the timeouts only guard against a hang, they do not measure speed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tlkeras.runtime.startup import filter_startup_noise

pytestmark = pytest.mark.integration  # processes: drivers, commands, servers, signals

REPO = Path(__file__).resolve().parents[1]
IMPORT = ("import gc; from tlkeras.runtime.startup import import_tensorflow; import_tensorflow(); "
          "print('ok', gc.get_freeze_count())")

# What TensorFlow 2.21 prints on start-up on a CPU-only machine (plus lines seen elsewhere).
BENIGN = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795691470.481645    2814 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1795691470.482269    2814 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1795691470.684653    2814 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F AVX512_VNNI FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
E0000 00:00:1795691504.058247    3512 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
I0000 00:00:1795691504.1    3512 cuda_diagnostics.cc:160] kernel driver does not appear to be running on this host (box): /proc/driver/nvidia/version does not exist
E0000 00:00:1795691470.5    2814 cuda_dnn.cc:8579] Unable to register cuDNN factory: Attempting to register factory for plugin cuDNN when one has already been registered
E0000 00:00:1795691470.5    2814 cuda_blas.cc:1407] Unable to register cuBLAS factory: Attempting to register factory for plugin cuBLAS when one has already been registered
W0000 00:00:1795691470.6    2814 computation_placer.cc:177] computation placer already registered. Please check linkage and avoid linking the same target more than once.
2024-01-10 10:11:12.123456: W tensorflow/compiler/tf2tensorrt/utils/py_utils.cc:38] TF-TRT Warning: Could not find TensorRT
"""
CHATTER = ("absl::InitializeLog", "oneDNN", "cudart_stub", "cuda drivers", "cpu_feature_guard",
           "To enable the following instructions")


def run_python(code: str, pythonpath: list[Path]) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter from the repo root, with TensorFlow's log level unset."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600)


def test_import_hides_startup_chatter():
    result = run_python(IMPORT, [REPO])
    assert result.returncode == 0, result.stderr
    said, frozen = result.stdout.split()
    # TensorFlow's objects (about 400,000) out of the collector's sight: the process ends 1.4 s
    # sooner (the interpreter's final collections no longer walk them; BENCHMARKS.md).
    assert said == "ok" and int(frozen) > 100_000
    for fragment in CHATTER:
        assert fragment not in result.stderr, result.stderr


def test_every_benign_line_is_dropped_and_a_real_error_kept():
    real = "E0000 00:00:1 some_op.cc:12] something real broke\n"
    # Lookalikes must be kept too: the patterns name the source file and the message.
    lookalikes = ("E0000 00:00:2    7 some_op.cc:9] failed call to cuInit: not from the CUDA platform\n"
                  "F0000 00:00:3    7 port.cc:153] oneDNN custom operations are on.\n")
    lines = BENIGN.splitlines(keepends=True)
    mixed = "".join(lines[:3]) + real + "".join(lines[3:]) + lookalikes
    assert filter_startup_noise(mixed) == real + lookalikes
    assert filter_startup_noise(BENIGN) == ""


def test_failed_import_shows_everything(tmp_path: Path):
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(textwrap.dedent("""\
        import os
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
        os.write(2, b"E0000 00:00:1 loader.cc:7] fake tensorflow: libtensorflow_cc.so not found\\n")
        raise ImportError("fake tensorflow cannot load")
        """))
    result = run_python(IMPORT, [tmp_path, REPO])  # the fake package shadows the real one
    assert result.returncode != 0
    assert result.stdout == ""
    assert "absl::InitializeLog" in result.stderr  # benign lines too: the import failed
    assert "loader.cc:7] fake tensorflow: libtensorflow_cc.so not found" in result.stderr
    assert "ImportError: fake tensorflow cannot load" in result.stderr
    # The captured lines come before the traceback, as they would without the capture.
    assert result.stderr.index("loader.cc:7]") < result.stderr.index("Traceback")
