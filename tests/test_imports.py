"""Cold start and layering: indexing the Function App imports nothing heavy; rotation/ never
imports the emulators."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "httpx",
    "aiohttp",
    "azure.identity",
    "azure.keyvault",
    "azure.storage",
    "pydantic",
    "stamina",
    "emulators",
    "rotation",
)


def test_importing_function_app_loads_no_sdk_and_no_rotation_code() -> None:
    code = (
        "import sys, function_app; "
        f"print(sorted({{m.split('.')[0] + '.' + (m.split('.') + [''])[1] for m in sys.modules if m.startswith({HEAVY!r})}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_indexing_finds_every_function() -> None:
    code = "import function_app; print(sorted(f.get_function_name() for f in function_app.app.get_functions()))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == str(
        sorted(
            [
                "doctor_target",
                "key_vault_events",
                "rotate_queued",
                "rotate_target",
                "rotation_status",
                "rotation_timer",
            ]
        )
    )


def test_the_product_never_imports_the_emulators() -> None:
    files = [*(ROOT / "rotation").rglob("*.py"), ROOT / "function_app.py"]
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] in {"emulators", "tests"} for n in names), file
