"""The house's rooms stay rooms: layers, sizes, and where a principal kind is asked for.

The layer order is import-linter's contract in ``pyproject.toml`` (run by ``scripts/lint``); the
test below shows the check failing on an upward import, so it is known to bite.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

from rotation import principals

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rotation"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
DATA_TABLES = {"backends/databricks_errors.py"}  # the rule table: data, read top to bottom
MAX_MODULE_LINES = 330  # "about 300"
MAX_FUNCTION_LINES = 40


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_root_holds_at_most_eight_modules() -> None:
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= 8, root


def test_no_module_is_long_but_the_data_tables() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in _modules()
        if (n := p.read_text().count("\n")) > MAX_MODULE_LINES
    }
    assert set(long) <= DATA_TABLES, long


def test_no_function_is_over_forty_lines() -> None:
    long = [
        f"{p.relative_to(PACKAGE)}:{node.lineno} {node.name} ({length} lines)"
        for p in _modules()
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_only_principals_asks_which_kind_a_principal_is() -> None:
    models = [name for name in principals.__all__ if name.endswith(("Principal", "Model"))]
    assert len(models) >= 6  # the kinds and their base
    kinds = re.compile(r"isinstance\([^)]*\b(" + "|".join(models) + r")\b[^)]*\)")
    asked = [
        f"{p.relative_to(PACKAGE)}: {m.group(0)}"
        for p in _modules()
        if "principals" not in p.parts
        for m in kinds.finditer(p.read_text())
    ]
    assert asked == []


def test_the_layer_check_fails_on_an_upward_import(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    shutil.copytree(PACKAGE, copy / "rotation", ignore=shutil.ignore_patterns("__pycache__"))

    def lint() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(LINT_IMPORTS), "--no-cache"],
            cwd=copy,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={"PYTHONPATH": str(copy), "PATH": str(LINT_IMPORTS.parent)},
        )

    kept = lint()
    assert kept.returncode == 0, kept.stdout + kept.stderr
    low = copy / "rotation" / "backends" / "http.py"
    low.write_text(low.read_text() + "\nfrom rotation.cli import main  # a floor reaching up\n")
    broken = lint()
    assert broken.returncode != 0
    assert "BROKEN" in broken.stdout
    assert "rotation.backends.http -> rotation.cli" in broken.stdout
