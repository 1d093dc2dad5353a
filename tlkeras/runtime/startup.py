"""Import TensorFlow and Keras without their C++ start-up chatter on stderr.

TensorFlow's native libraries log while they load, before absl logging is initialised, so
TF_CPP_MIN_LOG_LEVEL does not silence those lines, and they go straight to file descriptor 2,
past `sys.stderr`. `import_tensorflow` points fd 2 at a temporary file during the import, then
passes on every captured line that is not known-benign start-up chatter, so a genuine error
still reaches the user; if the import fails, everything captured is shown.

After the import, every object alive (TensorFlow's and Keras' modules, hundreds of thousands of
them) is moved out of the garbage collector's sight (`gc.freeze`): they live as long as the
process, and the interpreter's exit otherwise walks them in full collections for 1.4 s (measured:
a process that imported TensorFlow and ran one program took 1.45 s to exit after its last line,
0.16 s with the freeze; perf: 75% in `gc_collect_main`). Every driver, command and worker process
pays that at its end. Reference counting still frees them and runs their finalizers as before.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import sys
import tempfile
from types import ModuleType

__all__ = ["BENIGN_PATTERNS", "filter_startup_noise", "import_tensorflow"]

# A native log line starts with absl's "I0000 00:00:1795.5   2814 " or TF's older
# "2024-01-01 12:00:00.123456: I ", then the source file, possibly with its directory.
_PREFIX = r"^(?:[IWE]\d{4} [\d:.]+\s+\d+ |\d{4}-\d\d-\d\d [\d:.]+: [IWE] )(?:\S*/)?"


def _log(source: str, message: str) -> re.Pattern[str]:
    """A native log line from `source` (a file-name regex) whose message starts with `message`."""
    return re.compile(rf"{_PREFIX}{source}:\d+\] {message}")


# Only messages that are expected on a machine without a GPU/TensorRT, and harmless.
BENIGN_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    _log(r"port\.cc", r"oneDNN custom operations are on\."),
    _log(r"cudart_stub\.cc", r"Could not find cuda drivers on your machine, GPU will not be used\."),
    _log(r"cpu_feature_guard\.cc", r"This TensorFlow binary is optimized to use available CPU instructions"),
    re.compile(r"^To enable the following instructions: [\w ]+, in other operations, rebuild TensorFlow"),
    _log(r"cuda_(?:platform|executor|diagnostics|driver)\.cc", r"failed call to cuInit: "),
    _log(r"cuda_diagnostics\.cc", r"(?:kernel driver does not appear to be running on this host"
         r"|retrieving CUDA diagnostic information for host|hostname: |libcuda reported version is"
         r"|kernel reported version is|kernel version seems to match DSO)"),
    _log(r"\w+\.cc", r"Unable to register cu(?:DNN|FFT|BLAS) factory: Attempting to register factory"),
    _log(r"\w+\.cc", r"computation placer already registered\."),
    _log(r"py_utils\.cc", r"TF-TRT Warning: Could not find TensorRT"),
)


def filter_startup_noise(text: str) -> str:
    """Return the lines of `text` that match no benign pattern (blank lines dropped)."""
    kept = [line for line in text.splitlines(keepends=True)
            if line.strip() and not any(p.search(line.rstrip("\r\n")) for p in BENIGN_PATTERNS)]
    return "".join(kept)


def _flush_stderr() -> None:
    """Flush sys.stderr, so that Python text lands on the fd 2 current when it was written."""
    with contextlib.suppress(AttributeError, OSError, ValueError):  # None, closed, or odd stderr
        sys.stderr.flush()


def _import() -> ModuleType:
    """Import tensorflow, then keras (keras 3 loads tensorflow as its backend), list the devices;
    return tensorflow."""
    import keras  # noqa: F401
    import tensorflow

    # Finding the devices is where CPU-only machines log "failed call to cuInit": do it now,
    # inside the capture. (Thread settings can still be made afterwards.)
    tensorflow.config.list_physical_devices()
    return tensorflow


def import_tensorflow() -> ModuleType:
    """Import tensorflow and keras with fd 2 captured, pass on non-benign lines, then freeze what
    they created out of the collector's sight (see the module's docstring); return tensorflow."""
    if sys.modules.get("tensorflow") is not None:
        return sys.modules["tensorflow"]  # already imported: its chatter is long gone
    tensorflow = _import_quietly()
    gc.freeze()  # the exit 1.4 s sooner
    return tensorflow


def _import_quietly() -> ModuleType:
    """The import itself, fd 2 captured (see `import_tensorflow`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # setdefault: a user's own choice wins
    saved_fd = None
    try:
        saved_fd = os.dup(2)  # before the temporary file: were fd 2 closed, that file would get it
        capture = tempfile.TemporaryFile()
    except OSError:  # fd 2 closed, or no temporary file: a plain (chatty) import
        if saved_fd is not None:
            os.close(saved_fd)
        return _import()
    failed = True
    with capture:
        try:
            _flush_stderr()
            os.dup2(capture.fileno(), 2)
            tensorflow = _import()
            failed = False
        finally:
            _flush_stderr()  # Python text written during the import belongs to the capture
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            if not failed:  # on failure show everything: any line may explain the error
                text = filter_startup_noise(text)
            # A buffered writer on fd 2 (left open) copes with partial writes to a pipe; if
            # stderr is gone (a closed pipe), there is nowhere left to report to.
            with contextlib.suppress(OSError), open(2, "wb", closefd=False) as err:
                err.write(text.encode("utf-8", errors="replace"))
    return tensorflow


def configure_threads(intra_op: int = 1, inter_op: int = 1) -> None:
    """Thread settings for tiny ops: one intra-op thread per stack was measured faster than two;
    the cores are used by running one worker process per core instead."""
    tf = import_tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        pass  # TensorFlow already started: the settings are fixed for this process
