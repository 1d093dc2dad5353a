"""The package's shape is a checked fact: one-way layers, no import circles, no TensorFlow before
the workers start, one vocabulary, and nothing installed beside the package.

The contracts live in pyproject.toml ([tool.importlinter]); docs/architecture.md explains them.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from conftest import REPO

# What the drivers and `tlkeras` import before their worker processes start (their TensorFlow
# imports overlap the driver's only if the driver has not imported it yet).
BEFORE_WORKERS = [
    "tlkeras", "tlkeras.cli", "tlkeras.cli.command", "tlkeras.cli.experiment", "tlkeras.cli.fit_command",
    "tlkeras.cli.model_commands", "tlkeras.cli.flags", "tlkeras.cli.lifecycle", "tlkeras.core.config",
    "tlkeras.core.user_config", "tlkeras.core.members", "tlkeras.core.options", "tlkeras.core.vocabulary",
    "tlkeras.systems", "tlkeras.systems.measurements", "tlkeras.systems.user", "tlkeras.runtime.startup",
    "tlkeras.runtime.faults", "tlkeras.runtime.interrupts", "tlkeras.storage.folders", "tlkeras.execution.worker",
    "tlkeras.execution.ray_backend", "tlkeras.fit.ensemble",
]


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = None
    if pythonpath is not None:
        import os

        env = dict(os.environ, PYTHONPATH=str(pythonpath))
    command = "from importlinter.cli import lint_imports_command; lint_imports_command()"  # `lint-imports`
    return subprocess.run([sys.executable, "-c", command, "--no-cache"], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_the_import_contracts_hold():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, back_import", [
    ("core/config.py", "from tlkeras.results import statistics"),  # a lower folder importing a higher one
    ("systems/domains.py", "import tensorflow"),  # TensorFlow at import time where the drivers start
])
def test_a_back_import_breaks_a_contract(tmp_path, module, back_import):
    """The contracts are not vacuous: one added import, and lint-imports fails naming it."""
    shutil.copytree(REPO / "tlkeras", tmp_path / "tlkeras", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "tlkeras" / module
    path.write_text(path.read_text() + f"\n{back_import}  # added by the test\n")
    result = lint_imports(tmp_path, pythonpath=tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout[-3000:]
    assert "tlkeras." + module[:-3].replace("/", ".") in result.stdout


def test_no_module_imports_one_that_imports_it_back():
    """No circles, directly or through others (imports inside functions count)."""
    graph = grimp.build_graph("tlkeras", cache_dir=None)
    modules = sorted(m for m in graph.modules if m.startswith("tlkeras"))
    circles = []
    for module in modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith("tlkeras") and graph.chain_exists(imported, module):
                circles.append((module, imported))
    assert not circles, circles


def test_the_modules_run_before_the_workers_load_no_tensorflow():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in BEFORE_WORKERS) +
            "print(sorted(m for m in ('tensorflow', 'keras', 'ray') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", result.stdout


def test_flags_are_defined_only_in_the_command_layer_and_the_drivers():
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "tlkeras").rglob("*.py")
                 if "absl import flags" in p.read_text() or "absl.flags" in p.read_text()]
    assert offenders and all(p.startswith("tlkeras/cli/") for p in offenders), offenders


def test_no_sys_path_edits_outside_a_users_own_module_loading():
    """Drivers, tests and benchmarks import the installed package."""
    edits = [str(p.relative_to(REPO)) for folder in ("tlkeras", "experiments", "tests", "benchmarks")
             for p in (REPO / folder).rglob("*.py") if _calls(p, "sys.path.insert")]
    # systems/user.py loads a lab's file.py:g with its folder importable, as a script would be.
    assert edits == ["tlkeras/systems/user.py"], edits


def test_one_vocabulary_of_strategies_and_arms():
    from tlkeras.core import vocabulary
    from tlkeras.strategies import registry

    assert tuple(registry.STRATEGIES) == vocabulary.TRANSFER_STRATEGIES
    assert {s.arm for s in registry.STRATEGIES.values()} == {
        vocabulary.arm_of_strategy(n) for n in vocabulary.TRANSFER_STRATEGIES}
    assert registry.STRATEGIES[vocabulary.FINE_TUNE_ALL].arm == vocabulary.TRANSFER_ARM
    without = {name for name, s in registry.STRATEGIES.items() if not s.needs_pretraining}
    assert without == set(vocabulary.WITHOUT_PRETRAINING)
    literal = [str(p.relative_to(REPO)) for p in (REPO / "tlkeras").rglob("*.py")
               if p.name != "vocabulary.py" and any(isinstance(node, ast.Constant) and node.value == "transfer"
                                                    for node in ast.walk(ast.parse(p.read_text())))]
    assert not literal, literal  # the arm's name is vocabulary.TRANSFER_ARM


def _calls(path: Path, dotted: str) -> bool:
    return any(isinstance(node, ast.Call) and ast.unparse(node.func) == dotted
               for node in ast.walk(ast.parse(path.read_text())))


def test_one_manifest_name():
    found = [str(p.relative_to(REPO)) for p in (REPO / "tlkeras").rglob("*.py")
             if "MANIFEST = " in p.read_text()]
    assert found == ["tlkeras/fit/ensemble.py"], found


def test_the_tree_passes_ruff():
    """Sorted imports and pyflakes' checks over every Python file ([tool.ruff] in pyproject.toml)."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "tlkeras", "tests", "experiments", "benchmarks",
                             "docs"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
