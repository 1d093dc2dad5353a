"""Two `tlkeras` trees side by side: a commit's (`git archive` into a temporary folder) and this one.

The benchmarks that compare a change against a commit (`throughput.py --compare`,
`new_sizes.py --compare`) run each tree's package in its own process, with PYTHONPATH=tree.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent


def _git(*arguments: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *arguments], check=True, capture_output=True,
                          text=True).stdout.strip()


@contextlib.contextmanager
def commit_and_this_tree(revision: str) -> Iterator[dict[str, str]]:
    """{name: folder holding `tlkeras/`}: `revision`'s first, then this tree's (named with
    '+changes' when its `tlkeras/` has uncommitted changes). The commit's folder lives as long as
    the context."""
    sha = _git("rev-parse", "--short", revision)
    here = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "tlkeras")
    with tempfile.TemporaryDirectory(prefix=f"tlkeras-{sha}-") as old_tree:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha, "tlkeras"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", old_tree], input=archive, check=True)
        yield {sha: old_tree, f"{here}{'+changes' if dirty else ''} (this tree)": str(ROOT)}
