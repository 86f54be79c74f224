"""Suite-wide secret hygiene: collect every log record and output, scan for issued secrets."""

from __future__ import annotations

import logging
import re
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulators.registry import SecretRegistry

_lock = threading.Lock()
_texts: list[tuple[str, str]] = []
_registries: list[SecretRegistry] = []


class _Collector(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception as exc:  # noqa: BLE001 — a broken record is itself a finding
            text = f"unformattable record: {exc!r}"
        record_text(f"log {record.name}", text)


def start_collecting() -> None:
    """Attach the collector to the root logger (records from every library reach it)."""
    root = logging.getLogger()
    handler = _Collector(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)


def record_text(where: str, text: str) -> None:
    """Remember *text* (a CLI output, an HTTP body, an exception message) for the final scan."""
    with _lock:
        _texts.append((where, text))


def watch(registry: SecretRegistry) -> None:
    """Scan for the values *registry* holds."""
    _registries.append(registry)


def scanned() -> int:
    """Return how many texts were collected."""
    return len(_texts)


_WORD = re.compile(r"[A-Za-z0-9_.~+/=-]+")


def find(texts: list[tuple[str, str]], values: frozenset[str]) -> list[str]:
    """Return where any of *values* occurs in *texts* (also inside longer words)."""
    lengths = sorted({len(v) for v in values if v})
    hits = []
    for where, text in texts:
        if _contains(text, values, lengths):
            hits.append(f"{where}: contains an issued secret")
    return hits


def _contains(text: str, values: frozenset[str], lengths: list[int]) -> bool:
    for word in _WORD.findall(text):
        for n in lengths:
            if n > len(word):
                break
            if any(word[i : i + n] in values for i in range(len(word) - n + 1)):
                return True
    return False


def issued() -> int:
    """Return how many secret values the watched registries issued."""
    return len(frozenset().union(*(r.values() for r in _registries)))


def leaks() -> list[str]:
    """Return every place an issued secret appeared."""
    values: frozenset[str] = frozenset().union(*(r.values() for r in _registries))
    with _lock:
        texts = list(_texts)
    return find(texts, values)
