"""A logging filter that masks secrets: the second net behind :class:`~rotation.secret.Secret`.

It masks every value a ``Secret`` was made from in this process, plus anything shaped like a
Databricks PAT, a bearer token or a Prequel API key. Attach it to *handlers* (filters on loggers do
not see records propagated from child loggers): :func:`install` does that for the root logger.
"""

from __future__ import annotations

import logging
import re
from threading import Lock
from typing import Final

from rotation.secret import known_values

__all__ = [
    "REPORTED",
    "OneLineFormatter",
    "RedactingFilter",
    "configure",
    "hint",
    "install",
    "redact",
]

_MASK: Final = "[secret]"
_PATTERNS: Final = re.compile(
    r"dapi[0-9a-f]{32}(?:-\d+)?"  # Databricks PAT
    r"|sk_(?:prod|staging|test|live)_[A-Za-z0-9_-]{8,}"  # Prequel API keys
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*"  # JWTs
)


# An Authorization value (RFC 6750 token68) is masked and its scheme kept; a WWW-Authenticate
# challenge (`Bearer authorization="https://…"`) is header syntax, not a credential: left as is.
_BEARER: Final = re.compile(
    r"((?i:bearer)\s+)(?![A-Za-z0-9._~+/-]+=\s*\")[A-Za-z0-9._~+/-]{8,}=*(?![A-Za-z0-9._~+/=-])"
)

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


_PREFIX: Final = 8
"""Known values are found by their first characters (`rotation.secret` keeps none shorter)."""


class _KnownIndex:
    """The known values by their first `_PREFIX` characters, kept in step with them.

    Looking each known value up in every text (thousands of values, each log record and each
    string extra) cost milliseconds per record; instead, each window of `_PREFIX` characters of
    the text is looked up here and only the values that start with it are compared. Known values
    change as Secrets are made: the index takes the difference, not a rebuild.
    """

    def __init__(self) -> None:
        self._lock = Lock()
        self._key: tuple[int, str, str] | None = None
        self._members: set[str] = set()
        self._index: dict[str, set[str]] = {}
        self._short: set[str] = set()

    def find(self, text: str, values: list[str]) -> list[str]:
        """Return the *values* (the known values now) that *text* contains, in their order."""
        # Values are only ever added at the end (a value seen again moves there) and dropped
        # from the front: the count, the first and the last tell whether they changed.
        key = (len(values), values[0], values[-1])
        found: set[str] = set()
        with self._lock:
            if key != self._key:
                self._update(values)
                self._key = key
            get = self._index.get
            for start in range(len(text) - _PREFIX + 1):
                candidates = get(text[start : start + _PREFIX])
                if candidates:
                    found.update(v for v in candidates if text.startswith(v, start))
            found.update(v for v in self._short if v in text)
        return sorted(found, key=values.index) if len(found) > 1 else list(found)

    def _update(self, values: list[str]) -> None:
        current = set(values)
        for value in self._members - current:
            if len(value) < _PREFIX:
                self._short.discard(value)
                continue
            bucket = self._index[value[:_PREFIX]]
            bucket.discard(value)
            if not bucket:
                del self._index[value[:_PREFIX]]
        for value in current - self._members:
            if len(value) < _PREFIX:
                self._short.add(value)
            else:
                self._index.setdefault(value[:_PREFIX], set()).add(value)
        self._members = current


_KNOWN_INDEX = _KnownIndex()


def _known_in(text: str) -> list[str]:
    """Return the known values *text* contains, in the order they became known."""
    values = known_values()
    return _KNOWN_INDEX.find(text, values) if values else []


def redact(text: str) -> str:
    """Return *text* with every known secret value and secret-shaped string masked."""
    text = _BEARER.sub(rf"\g<1>{_MASK}", _PATTERNS.sub(_MASK, text))
    found = _known_in(text)
    for value in found:
        if value in text:
            text = text.replace(value, _MASK)
    if found:  # a mask next to other text could complete another value: look once more
        for value in _known_in(text):
            text = text.replace(value, _MASK)
    return text


class RedactingFilter(logging.Filter):
    """Rewrite each record's message (and exception text) with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record in place; never drop it."""
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        for key, value in list(vars(record).items()):  # extras, e.g. stamina's caused_by
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted)
            record.exc_info = None
        return True


def install(logger: logging.Logger | None = None) -> RedactingFilter:
    """Attach one shared filter to every handler of *logger* (default: the root logger)."""
    target = logger or logging.getLogger()
    existing = next(
        (f for h in target.handlers for f in h.filters if isinstance(f, RedactingFilter)), None
    )
    flt = existing or RedactingFilter()
    for handler in target.handlers:
        if flt not in handler.filters:
            handler.addFilter(flt)
    return flt


# --- the CLI's logging: one line per failure below debug ------------------------------------

REPORTED: Final = "rotation_reported"
"""A record's extra flag: its text is also in the run's report, which the CLI prints; so at the
default level the CLI does not log it as well (``extra={REPORTED: True}``)."""
_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_QUIET_LOGGERS: Final = ("azure", "httpx", "httpcore", "aiohttp")  # HTTP dumps: only with debug
_FAILURE_LOGGERS: Final = ("azure.identity",)
"""Loggers whose warnings restate a failure the CLI reports itself (a credential that got no
token surfaces as the command's error line); kept from the default level, one line at info."""
_NOISE: Final = re.compile(r"^\s*(Content:|Visit https?://|To mitigate|Code: |Message: )")
_HINT: Final = " (details: --log-level debug)"


class OneLineFormatter(logging.Formatter):
    """Format every record as one line: the message condensed, a traceback as its last line.

    Multi-line messages (azure-identity's list of attempted credentials, Entra's JSON bodies)
    keep their first line and each attempted credential's first sentence; everything else is
    left to ``--log-level debug``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return *record* as one line."""
        text = super().format(record)
        if "\n" not in text:
            return text
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        failed = record.exc_info is not None or record.exc_text
        if failed:  # the traceback's last line names the exception and says why
            return f"{lines[0]} — {lines[-1]}{_HINT}"
        kept = [_first_sentence(line) for line in lines[1:] if not _NOISE.match(line)]
        head = lines[0].removesuffix(".")
        if "Attempted credentials:" in kept:
            kept.remove("Attempted credentials:")
        return f"{head}: {'; '.join(kept)}{_HINT}" if kept else lines[0] + _HINT


def _first_sentence(line: str) -> str:
    head, dot, _ = line.partition(". ")
    return head + dot.strip()


class _Terse(logging.Filter):
    """At the default level, drop what the CLI says itself; count what it drops.

    That is: failures the report carries (`REPORTED`), and credential chains' warnings (the
    command's error line names the failure).
    """

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False for a record the CLI's own output already carries."""
        restated = getattr(record, REPORTED, False) or (
            record.levelno < logging.ERROR
            and any(record.name.startswith(n) for n in _FAILURE_LOGGERS)
        )
        if restated:
            self.dropped += 1
        return not restated


_TERSE = _Terse()


def configure(level: str) -> None:
    """Set up the CLI's logging on stderr at *level* (``debug``, ``info``, ``warning``, ``error``).

    Below ``debug`` every record is one line and the HTTP loggers are quiet; at the default
    (``warning``) and ``error`` the failures the CLI prints itself are not logged as well. With
    ``debug``, everything, in full. Secrets are masked at every level (:func:`install`).
    """
    root = logging.getLogger()
    before = set(root.handlers)
    logging.basicConfig(level=level.upper(), format=_FORMAT)
    if level != "debug":
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
        for handler in set(root.handlers) - before:  # only the stderr handler made here
            handler.setFormatter(OneLineFormatter(_FORMAT))
            if level != "info" and _TERSE not in handler.filters:
                handler.addFilter(_TERSE)
    install()


def hint() -> str:
    """Return a pointer to ``--log-level debug`` when the CLI kept details back, else ``""``."""
    return _HINT if _TERSE.dropped else ""
