"""A logging filter that masks secrets: the second net behind :class:`~rotation.secret.Secret`.

It masks every value a ``Secret`` was made from in this process, plus anything shaped like a
Databricks PAT, a bearer token or a Prequel API key. Attach it to *handlers* (filters on loggers do
not see records propagated from child loggers): :func:`install` does that for the root logger.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from rotation.secret import known_values

__all__ = ["RedactingFilter", "install", "redact"]

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


def redact(text: str) -> str:
    """Return *text* with every known secret value and secret-shaped string masked."""
    text = _BEARER.sub(rf"\g<1>{_MASK}", _PATTERNS.sub(_MASK, text))
    for value in known_values():
        if value in text:
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
