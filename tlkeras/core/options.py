"""How a sweep runs (never what it computes), and how it reports progress.

Free of TensorFlow, so that a worker process can receive these options before its first
TensorFlow import (which `startup.import_tensorflow` keeps quiet).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


def print_report(message: str) -> None:
    """The default reporter: a timestamped line on standard output."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class SweepOptions:
    """How to run (not what to compute): nothing here changes a result."""

    workers: int = 2  # local worker processes; with an embedded Ray, its CPUs
    max_members: int = 64
    cache_dir: Path | None = None
    report_every_seconds: float = 15.0
    report: Callable[[str], None] = print_report  # picklable (module level): workers call it
    backend: str = "local"  # "local": worker processes on this machine; "ray": Ray tasks (ray_backend.py)
    ray_address: str = ""  # "": start an embedded local Ray; "auto" or "host:port": join a cluster


BACKENDS = ("local", "ray")


def duration(seconds: float) -> str:
    """4s, 3m07s, 1h02m."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
