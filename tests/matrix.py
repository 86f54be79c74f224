"""Collect the crash matrix's cases so the session can print "N of N fault cases held"."""

from __future__ import annotations

_cases: dict[str, list[str]] = {}


def record(case: str, violations: list[str]) -> None:
    """Remember one case and what it broke (nothing, ideally)."""
    _cases[case] = list(violations)


def summary() -> str | None:
    """Return the matrix's figure, or None when no case ran."""
    if not _cases:
        return None
    held = sum(1 for v in _cases.values() if not v)
    failed = [c for c, v in _cases.items() if v]
    line = f"crash matrix: {held} of {len(_cases)} fault cases end with I1-I4 held"
    return line + (f"; broken: {', '.join(failed[:10])}" if failed else "")
