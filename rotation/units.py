"""Units of time in seconds, for every layer (tags, plans, schedules and lifetimes)."""

from __future__ import annotations

from typing import Final

__all__ = ["DAY", "HOUR", "MINUTE"]

MINUTE: Final = 60.0
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
