"""The timer's period, read from its NCRONTAB schedule (``ROTATION_SCHEDULE``).

The configuration needs it to check that ``rotate_before_days`` leaves a timer run (and a retry)
before a PAT expires. :func:`longest_gap_hours` answers for the schedules an operator writes for
this timer: six fields ``second minute hour day month day-of-week`` whose day and month fields are
``*`` (every day), with optional day-of-week restrictions. Each field may be ``*``, ``*/n``, ``a``,
``a-b``, ``a-b/n`` or a comma list of those. For anything else (days of the month, months, names)
it returns None: the configuration then applies only its fixed minimum.
"""

from __future__ import annotations

import itertools
import re

from rotation.units import DAY, HOUR, MINUTE

__all__ = ["DEFAULT_SCHEDULE", "SCHEDULE_VAR", "longest_gap_hours"]

SCHEDULE_VAR = "ROTATION_SCHEDULE"
DEFAULT_SCHEDULE = "0 0 */6 * * *"
"""The schedule of the samples and of ``infra/main.bicep`` (every 6 hours)."""

_PART = re.compile(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?")


def _values(field: str, low: int, high: int) -> set[int] | None:
    """Return the values an NCRONTAB field allows within [low, high], or None if unreadable."""
    out: set[int] = set()
    for part in field.split(","):
        match = _PART.fullmatch(part)
        if not match:
            return None
        span, step = match.group(1), int(match.group(2) or 1)
        if span == "*":
            start, end = low, high
        else:
            first, _, last = span.partition("-")
            start, end = int(first), int(last or first)
        if step < 1 or not low <= start <= end <= high:
            return None
        out.update(range(start, end + 1, step))
    return out


def longest_gap_hours(schedule: str) -> float | None:
    """Return the longest time between two runs of *schedule* in hours, or None if unknown."""
    fields = schedule.split()
    if len(fields) != 6 or fields[3] not in {"*", "?"} or fields[4] != "*":  # noqa: PLR2004
        return None
    seconds, minutes, hours = (_values(f, 0, n) for f, n in zip(fields, (59, 59, 23), strict=False))
    weekdays = _values(fields[5].replace("?", "*"), 0, 7)
    if not (seconds and minutes and hours and weekdays):
        return None
    times = sorted(h * HOUR + m * MINUTE + s for h in hours for m in minutes for s in seconds)
    within_day = max((b - a for a, b in itertools.pairwise(times)), default=0)
    days = sorted({d % 7 for d in weekdays})
    day_gaps = [b - a for a, b in zip(days, [*days[1:], days[0] + 7], strict=True)]
    across = max(day_gaps) * DAY - times[-1] + times[0]
    return max(within_day, across) / HOUR
