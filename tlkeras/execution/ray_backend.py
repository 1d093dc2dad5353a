"""Stack jobs as Ray tasks: a sweep past one machine (`SweepOptions.backend == "ray"`).

Each stack job is one task asking for one CPU. Nothing assumes a shared filesystem: a task gets
its job, the config, and its inputs as bytes (the pretrained models it starts from are put in
Ray's object store once and shared by every task that needs them; a lab's measurements and
simple-model source travel with the config), and it returns its members' files and records
(`handoff.JobOutput`). The driver alone writes the run directory, with the same writer the local
workers use, so a run made with Ray looks like a local one, and resume, TensorBoard and the
report work on it unchanged. A task whose worker process dies is retried by Ray (`TASK_RETRIES`);
the members are independent and seeded, so the retry computes the same numbers.

Workers' progress lines reach the driver through a Ray queue and are printed there, with the
driver's own; Ray's start-up and log chatter stays out of the run's output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tlkeras.core.options import SweepOptions
from tlkeras.runtime import faults, interrupts

# Free of TensorFlow at import (the drivers connect before TensorFlow loads); the run's modules
# are imported where used.
if TYPE_CHECKING:
    from tlkeras.core.config import StudyConfig
    from tlkeras.core.members import StackJob
    from tlkeras.execution.handoff import JobOutput, ModelFiles
    from tlkeras.storage.rundir import RunDir

TASK_RETRIES = 3  # a task whose worker process died is run again, this many times at most
CONNECT_SECONDS = 10.0


class BackendError(ValueError):
    """Ray cannot be used as asked (not installed, nothing answers at the address): one line."""


def connect(address: str, cpus: int) -> int:
    """Connect this process to Ray, or start an embedded local Ray with `cpus` CPUs when
    `address` is empty; returns the CPUs of the cluster. Idempotent within a process."""
    if address:
        use_cluster_token(address)  # before Ray is imported: it reads the mode once, at import
    ray = _import_ray()
    if not ray.is_initialized():
        check_address(address)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage-stats banner
        quiet = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                     configure_logging=True)
        from ray.exceptions import RayError

        failed = (ConnectionError, RuntimeError, ValueError, RayError)
        if not address:
            try:
                ray.init(address="local", num_cpus=cpus, **quiet)
            except failed as error:
                raise BackendError(f"could not start a local Ray ({_first_line(error)})") from None
        else:
            with tempfile.TemporaryFile() as chatter, _stderr_into(chatter):
                try:
                    ray.init(address=address, **quiet)
                except failed as error:
                    chatter.seek(0)
                    raise BackendError(_connect_failure(address, error, chatter.read())) from None
    found = int(ray.cluster_resources().get("CPU", 0))
    if found < 1:
        raise BackendError(f"--ray_address={address!r}: the Ray cluster has no CPUs to run stack jobs on")
    return found


def use_cluster_token(address: str) -> None:
    """Send this machine's Ray token to a cluster named by address, as Ray does for `auto`.

    A cluster started with `ray start --head` (Ray >= 2.52) requires token authentication and
    writes its token to ~/.ray/auth_token; Ray sends a token to an explicit `host:port` only
    when RAY_AUTH_MODE=token is set. If the user has not chosen a mode and a token is at hand
    (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token) we choose token mode; a cluster
    without authentication ignores the token."""
    if address == "auto" or "RAY_AUTH_MODE" in os.environ:
        return
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or Path(token_file).is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def _connect_failure(address: str, error: Exception, chatter: bytes) -> str:
    """One line for a failed connection to a running cluster, from Ray's error and its stderr."""
    causes, cause = [], error
    while cause is not None:
        causes.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    said = "\n".join(causes) + chatter.decode(errors="replace")
    if "InvalidAuthToken" in said or "AuthenticationError" in said:
        return (f"--ray_address={address!r}: the Ray cluster refused this machine's authentication token; "
                "copy the head's token (`ray get-auth-token` on the head) to ~/.ray/auth_token here, or set "
                "RAY_AUTH_TOKEN")
    return f"--ray_address={address!r}: could not connect to Ray ({_first_line(error)})"


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:160]


@contextlib.contextmanager
def _stderr_into(file):
    """Route this process's file descriptor 2 into `file` (Ray's C++ client logs each retry there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def check_address(address: str) -> None:
    """`host:port` must answer on TCP before Ray is asked (Ray itself retries for a minute)."""
    if address in ("", "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BackendError(f"--ray_address={address!r}: expected host:port, 'auto' (a cluster started on "
                           "this machine with `ray start`), or empty (start a local Ray)")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise BackendError(f"--ray_address={address!r}: no Ray cluster answers there ({reason}); start one "
                           "with `ray start --head`, or leave --ray_address empty for a local Ray") from None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BackendError("--backend=ray needs the ray package: pip install -r requirements.txt") from None
    return ray


class RayBackend:
    """Runs a sweep's stack jobs as Ray tasks; `SweepRunner` drives it like the local pool."""

    def __init__(self, config: StudyConfig, run_dir: RunDir, options: SweepOptions):
        self.workers = connect(options.ray_address, options.workers)  # first: it sets Ray's auth mode
        ray = _import_ray()
        from ray.util.queue import Queue

        self.ray = ray
        self.config = config
        self.run_dir = run_dir
        self.options = options
        self.progress = Queue(actor_options={"num_cpus": 0})
        self.task_options = replace(options, report=QueuedReport(self.progress), cache_dir=None)
        self.config_ref = ray.put(ShippedConfig.of(config))
        self.task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(run_stack_job)
        self.pretrained_refs: dict[str, object] = {}
        self.running: set = set()

    def submit(self, job: StackJob):
        from tlkeras.execution.handoff import gather_inputs  # TensorFlow: imported where used (see the top)

        inputs = gather_inputs(self.config, self.run_dir, self.options, job)
        keys = sorted(inputs.pretrained)
        refs = [self._shared(key, inputs.pretrained[key]) for key in keys]
        handle = self.task.remote(self.config_ref, self.task_options, job, inputs.cached, inputs.design, keys, *refs)
        self.running.add(handle)
        return handle

    def _shared(self, key: str, files: ModelFiles):
        """A pretrained model in the object store, once for all the tasks that start from it."""
        if key not in self.pretrained_refs:
            self.pretrained_refs[key] = self.ray.put(files)
        return self.pretrained_refs[key]

    def wait(self, handles, timeout: float) -> list:
        ready, _ = self.ray.wait(list(handles), num_returns=1, timeout=timeout)
        self.relay_progress()
        return ready

    def collect(self, handle, job: StackJob) -> tuple[float, int]:
        """The task's members, written into the run directory; its error, if it failed."""
        from ray import exceptions

        from tlkeras.execution.handoff import write_output

        self.running.discard(handle)
        try:
            output: JobOutput = self.ray.get(handle)
        except exceptions.RayTaskError as error:  # the job's own error, as the local pool gives it
            interrupts.check()
            cause = error.cause if isinstance(error.cause, BaseException) else None
            if cause is None:
                raise
            raise cause from None
        except (exceptions.WorkerCrashedError, exceptions.NodeDiedError, exceptions.TaskCancelledError) as error:
            from tlkeras.core.errors import WorkerDied
            from tlkeras.execution.jobs import job_label

            interrupts.check()
            raise WorkerDied(f"the Ray worker training [{job_label(job)}] died {TASK_RETRIES + 1} times "
                             f"({type(error).__name__})") from None
        self.relay_progress()
        write_output(self.config, self.run_dir, self.options, output)
        return output.seconds, output.steps

    def relay_progress(self) -> None:
        """Print the lines the tasks reported since the last call."""
        size = self.progress.qsize()
        if size:
            for line in self.progress.get_nowait_batch(size):
                self.options.report(line)

    def stop(self) -> None:
        """Ctrl-C or an error: end the running tasks now."""
        for handle in list(self.running):
            try:
                self.ray.cancel(handle, force=True)
            except Exception:  # already finished, or its worker gone: nothing to stop
                pass
        self.running.clear()

    def close(self) -> None:
        """Ray itself stays up until this process ends (an embedded one then ends with it)."""
        try:
            self.relay_progress()
            self.ray.kill(self.progress.actor)
        except Exception:  # a broken cluster: progress lines are lost, never results
            pass


@dataclass(frozen=True)
class QueuedReport:
    """A worker's reporter: lines go to the driver through a Ray queue."""

    queue: object

    def __call__(self, message: str) -> None:
        self.queue.put_nowait(message)


@dataclass(frozen=True)
class ShippedConfig:
    """The config with the files it names, for workers that cannot read the driver's disk:
    a lab's measurements (parsed) and the source of each of its Python systems."""

    config: StudyConfig
    measurements: object | None
    sources: dict[str, bytes]

    @classmethod
    def of(cls, config: StudyConfig) -> "ShippedConfig":
        from tlkeras.systems import measurements
        from tlkeras.systems import user as user_systems

        references = [s for s in (config.simple_system, *config.systems) if user_systems.is_reference(s)]
        sources = {r: user_systems.source_path(r).read_bytes() for r in references}
        found = measurements.of_config(config) if config.measurements else None
        return cls(config=config, measurements=found, sources=sources)

    def install(self) -> StudyConfig:
        """Make this process read the shipped files instead of the driver's paths."""
        from tlkeras.systems import measurements
        from tlkeras.systems import user as user_systems

        if self.measurements is not None:
            measurements.install(self.config, self.measurements)
        for reference, source in self.sources.items():
            user_systems.install_source(reference, source)
        return self.config


_EXECUTORS: dict[str, object] = {}


def run_stack_job(shipped: ShippedConfig, options: SweepOptions, job: StackJob, cached: dict, design: dict,
                  pretrained_keys: list[str], *pretrained: ModelFiles) -> JobOutput:
    """The Ray task: one stack job, trained in this worker process, returned as bytes."""
    from tlkeras.execution.handoff import JobInputs

    faults.point("ray.task.started")
    executor = _executor(shipped)
    executor.options = options
    return executor.run(job, JobInputs(pretrained=dict(zip(pretrained_keys, pretrained)), cached=cached,
                                       design=design))


def _executor(shipped: ShippedConfig):
    """This worker process's executor for a config (TensorFlow set up on first use)."""
    key = shipped.config.to_json()
    if key not in _EXECUTORS:
        from tlkeras.runtime.startup import import_tensorflow

        tf = import_tensorflow()
        tf.get_logger().setLevel("ERROR")
        from tlkeras.execution.jobs import JobExecutor
        from tlkeras.runtime.startup import configure_threads

        configure_threads(intra_op=1, inter_op=1)
        config = shipped.install()
        _EXECUTORS.clear()
        _EXECUTORS[key] = JobExecutor(config, SweepOptions())
    return _EXECUTORS[key]
