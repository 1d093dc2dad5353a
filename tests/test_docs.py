"""The documents a newcomer reads stay true: docs/flags.md is what the programs' --helpfull says,
README is short and links every moved guide, and every relative link resolves."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.integration  # processes: drivers, commands, servers, signals

LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def test_the_flags_page_is_generated_from_the_programs_help():
    result = subprocess.run([sys.executable, str(REPO / "docs" / "make_flags.py"), "--check"], capture_output=True,
                            text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr


def test_readme_is_short_and_links_every_guide():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for target in ("RESULTS.md", "BUILD.md", "docs/architecture.md", "docs/flags.md", "docs/fit.md",
                   "docs/strategies.md", "docs/ray.md", "docs/reproducibility.md", "docs/performance.md"):
        assert f"]({target}" in readme, target


def test_every_relative_link_in_the_documents_resolves():
    broken = []
    for page in [REPO / "README.md", REPO / "RESULTS.md", REPO / "BUILD.md", *(REPO / "docs").glob("*.md")]:
        for target, _ in LINK.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, broken
