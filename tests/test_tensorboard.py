"""A real `tensorboard --logdir` on 127.0.0.1 reads a driver's run: scalars, histograms, images.

The run is conftest's exp2_run (hill2, hill3 and phosphorylation at n=48, oracle n=128, seeds 0
and 1), which test_drivers reads as files."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.integration  # processes: drivers, commands, servers, signals


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def tensorboard(exp2_run):
    run, _ = exp2_run
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", f"--logdir={run / 'tensorboard'}", "--host=127.0.0.1",
         f"--port={port}", "--load_fast=false", "--reload_interval=0", "--reload_task=blocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:  # until the server answers: it loads every run once, before it serves (blocking)
            try:
                if "figures" in json.dumps(_get(port, "/data/plugin/images/tags")):
                    break
            except OSError:
                pass
            assert server.poll() is None, "tensorboard exited"
            assert time.monotonic() < deadline, "tensorboard did not serve the run within 90 s"
            time.sleep(1)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_scalar_tags_and_one_continuous_transfer_curve(tensorboard):
    tags = _get(tensorboard, "/data/plugin/scalars/tags")
    run = "transfer/hill3/n48/seed0"
    assert {"train/loss", "eval/l1_mean", "eval/l1_inside", "eval/l1_outside"} <= set(tags[run])
    assert "train/loss" in tags["oracle/hill3/n128/seed1"]
    points = _get(tensorboard, f"/data/plugin/scalars/scalars?run={run}&tag=train/loss")
    assert [step for _, step, _ in points] == list(range(1, 7))
    # Evaluated during training (6 epochs / 40 evaluations: every epoch), the pretrained model's
    # error on hill3 first (epochs 1-4), then fine-tuning's (5-6): one curve, steps in order.
    for tag in ("eval/l1_outside", "eval/l1_inside", "eval/l1_mean"):
        curve = _get(tensorboard, f"/data/plugin/scalars/scalars?run={run}&tag={tag}")
        assert [step for _, step, _ in curve] == list(range(1, 7)), tag
    baseline = _get(tensorboard, "/data/plugin/scalars/scalars?run=baseline/hill3/n48/seed0&tag=eval/l1_mean")
    assert [step for _, step, _ in baseline] == list(range(1, 7))
    assert len({value for _, _, value in baseline}) > 1  # a curve, not a repeated number


def test_histograms_of_evaluation_errors(tensorboard):
    tags = _get(tensorboard, "/data/plugin/histograms/tags")
    for arm_run in ("transfer/hill3/n48/seed1", "baseline/hill3/n48/seed0", "oracle/hill3/n128/seed0"):
        assert "eval/point_error" in tags[arm_run]
    steps = _get(tensorboard, "/data/plugin/histograms/histograms?run=baseline/hill3/n48/seed0&tag=eval/point_error")
    assert [step for _, step, _ in steps] == list(range(1, 7))  # a histogram at every evaluation


def test_figures_as_images_and_the_hparams_dashboard(tensorboard):
    images = _get(tensorboard, "/data/plugin/images/tags")
    assert {"figures/surfaces_hill3", "figures/l1_by_system_n48"} <= set(images["figures"])
    plugins = _get(tensorboard, "/data/plugins_listing")
    assert plugins["hparams"]["enabled"] if isinstance(plugins["hparams"], dict) else plugins["hparams"]
    # One hparams row per member, with its arm, system, volume and seed and its final L1.
    request = {"startIndex": 0, "sliceSize": 1000, "colParams": [],
               "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]}
    with urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{tensorboard}/data/plugin/hparams/session_groups", data=json.dumps(request).encode(),
            headers={"Content-Type": "application/json"}), timeout=10) as response:
        groups = {g["name"]: g for g in json.loads(response.read())["sessionGroups"]}
    row = groups["transfer/hill3/n48/seed1"]
    assert row["hparams"] == {"arm": "transfer", "system": "hill3", "volume": 48.0, "seed": 1.0}
    assert {m["name"]["tag"] for m in row["metricValues"]} >= {"eval/l1_mean", "eval/l1_var"}
    assert {"baseline/phosphorylation/n48/seed0", "oracle/hill2/n128/seed1"} <= set(groups)
