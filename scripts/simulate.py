"""Run the long-horizon simulation (tests/simulation.py) and print its line and breakdown.

    .venv/bin/python scripts/simulate.py [--days 730] [--seed N] [--per-kind 10]
                                         [--health-check-hours 24] [--timer-hours 6]

The full form is ``--days 730``; the test suite runs a short form (``SIMULATION_DAYS``, default
60). Exit status 1 when an invariant was violated; every violation is listed with its simulated
day, and the seed replays the same schedule.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.simulation import DEFAULT_SEED, Settings, simulate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=730, help="simulated days (default 730)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the schedule's seed")
    parser.add_argument("--per-kind", type=int, default=10, help="targets of each principal kind")
    parser.add_argument(
        "--health-check-hours", type=float, default=24.0, help="the targets' health check cadence"
    )
    parser.add_argument("--timer-hours", type=float, default=6.0, help="the timer's period")
    args = parser.parse_args(argv)
    settings = Settings(
        days=args.days,
        seed=args.seed,
        per_kind=args.per_kind,
        timer_hours=args.timer_hours,
        health_check_hours=args.health_check_hours,
    )
    print(f"simulating {settings.days} days with seed {settings.seed} ...", flush=True)
    result = asyncio.run(simulate(settings))
    print(result.line())
    for line in result.details():
        print(f"  {line}")
    for violation in result.violations:
        print(f"VIOLATION {violation}")
    return 1 if result.violations else 0


if __name__ == "__main__":
    sys.exit(main())
