"""``scripts/bench.py --smoke``: CI runs the bench's every path once, with tiny numbers.

Figures are printed, not asserted (timings belong to a quiet machine, not to CI); this checks that
the bench runs, prints each figure beside its goal, writes them as JSON, and that the counts that
do not depend on timing hold: the no-op runs' calls and no failed rotation under the throttle.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES = (
    "cold start ratio",
    "calls, forced rotation (with revoke)",
    "calls, no-op run (not due)",
    "critical path ratio",
    "no-op listing calls",
    "scale wall / real limit",
    "scale failures",
    "rotator peak RSS",
    "rotator CPU per rotation",
    "rotator CPU per call",
)


def test_the_bench_smoke_run_prints_and_writes_every_figure(tmp_path: Path) -> None:
    table = tmp_path / "figures.json"
    try:
        done = subprocess.run(
            [sys.executable, "scripts/bench.py", "--smoke", "--json", str(table)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        said = [str(x)[-3000:] for x in (exc.stdout, exc.stderr) if x]
        pytest.fail(f"the smoke run did not end in 300 s; it said:\n{chr(10).join(said)}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in FIGURES:
        assert f"-> {name}: " in done.stdout, name
    assert "(goal " in done.stdout
    figures = {f["name"]: f for f in json.loads(table.read_text())["figures"]}
    assert set(figures) == set(FIGURES)
    assert figures["calls, no-op run (not due)"]["value"] == 1
    assert figures["no-op listing calls"]["ok"] is True
    assert figures["scale failures"]["value"] == 0
    scale = figures["scale wall / real limit"]["detail"]
    assert scale["outcomes"] == {"rotated": scale["targets"]}
    assert scale["key_vault"]["creates"] == scale["targets"]  # one create per bootstrap
    assert scale["key_vault"]["throttled"] > 0  # the smoke vault throttles: the path ran
    assert figures["rotator CPU per rotation"]["unit"] == " ms"
