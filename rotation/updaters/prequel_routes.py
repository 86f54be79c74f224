"""Which route a Prequel consumer answers on: the preferred one, else the documented one.

Some default routes are inferred (``docs/reference/prequel-api.md``): ``/sources/{id}`` and its
``test-connection``, and a destination's ``/destinations/{id}/test-connection``. Prequel
documents the older ``/export/`` forms (its own client ``@prequel/react`` tests a destination at
``/export/destinations/{id}/test-connection``; its versioning page names ``/export/sources``
as the deprecated form of ``/sources``). When a route answers 404, the same request is sent to
the next candidate; the first that answers is remembered for the consumer for the life of the
process (a Function App worker keeps it; a CLI run finds it again at the cost of one 404). A
404 from every candidate is a failure: nothing is saved on a route that did not answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Lock
from typing import Final, Literal

from rotation import errors

__all__ = [
    "DESTINATION_ROUTES",
    "DESTINATION_TESTS",
    "IMPORT_ROUTES",
    "IMPORT_TESTS",
    "SOURCE_ROUTES",
    "SOURCE_TESTS",
    "NotFoundError",
    "Purpose",
    "Route",
    "Router",
    "configured",
]

Purpose = Literal["object", "test"]
"""``object``: read and update the source or destination; ``test``: its connection test."""


@dataclass(frozen=True, slots=True)
class Route:
    """One route template (``{id}`` is the object's id) and what is known of it."""

    template: str
    source: str
    """Where it comes from, for people: ``documented …``, ``inferred …``, ``configured``."""

    @property
    def documented(self) -> bool:
        """Return whether Prequel documents the route (its docs or its own client)."""
        return self.source.startswith("documented")

    def url(self, base_url: str, ident: str) -> str:
        """Return the route's URL for object *ident* under *base_url*."""
        return base_url.rstrip("/") + self.template.format(id=ident)

    def describe(self) -> str:
        """Return e.g. ``/sources/{id} (inferred)``."""
        return f"{self.template} ({self.source})"


DOCUMENTED: Final = "documented by Prequel"
INFERRED: Final = "inferred, not in Prequel's docs"
EXPORT_CLIENT: Final = "documented: Prequel's own client, deprecated /export/ form"
EXPORT_FORM: Final = "documented: the deprecated /export/ form of Prequel's versioning page"
CONFIGURED: Final = "configured"

SOURCE_ROUTES: Final = (
    Route("/sources/{id}", INFERRED),
    Route("/export/sources/{id}", EXPORT_FORM),
)
SOURCE_TESTS: Final = (
    Route("/sources/{id}/test-connection", INFERRED),
    Route("/export/sources/{id}/test-connection", EXPORT_FORM),
)
DESTINATION_ROUTES: Final = (Route("/destinations/{id}", DOCUMENTED),)
DESTINATION_TESTS: Final = (
    Route("/destinations/{id}/test-connection", INFERRED),
    Route("/export/destinations/{id}/test-connection", EXPORT_CLIENT),
)
IMPORT_ROUTES: Final = (Route("/import/sources/{id}", f"{DOCUMENTED} (PATCH; GET inferred)"),)
IMPORT_TESTS: Final = (Route("/import/sources/{id}/test-source", DOCUMENTED),)

_ANSWERED: dict[tuple[str, str, Purpose], Route] = {}
_LOCK = Lock()


class Router:
    """The candidate routes of one consumer, per purpose, and the one that answered."""

    def __init__(
        self, base_url: str, consumer: str, candidates: dict[Purpose, tuple[Route, ...]]
    ) -> None:
        self._base = base_url.rstrip("/")
        self._consumer = consumer
        self._candidates = {p: c for p, c in candidates.items() if c}

    def has(self, purpose: Purpose) -> bool:
        """Return whether the consumer has a route for *purpose* (a test may be switched off)."""
        return purpose in self._candidates

    def order(self, purpose: Purpose) -> list[Route]:
        """Return the routes to try for *purpose*: the one that answered before first."""
        candidates = list(self._candidates.get(purpose, ()))
        known = self.answered(purpose)
        return [known, *(r for r in candidates if r != known)] if known else candidates

    def answered(self, purpose: Purpose) -> Route | None:
        """Return the route that answered for *purpose* in this process, if one did."""
        with _LOCK:
            return _ANSWERED.get((self._base, self._consumer, purpose))

    def remember(self, purpose: Purpose, route: Route) -> None:
        """Record that *route* answered for *purpose*."""
        with _LOCK:
            _ANSWERED[(self._base, self._consumer, purpose)] = route

    def describe(self) -> list[str]:
        """Return one line per purpose: the route in use (or to be tried) and what is known."""
        lines = []
        for purpose, candidates in self._candidates.items():
            used = self.answered(purpose)
            what = "read and update" if purpose == "object" else "connection test"
            if used is None:
                tried = " then ".join(r.describe() for r in candidates)
                lines.append(f"{what}: not called yet; will try {tried}")
                continue
            fell_back = used != candidates[0]
            why = f", after {candidates[0].template} answered 404" if fell_back else ""
            lines.append(f"{what}: {used.describe()}{why}")
        return lines

    def uses_undocumented(self) -> bool:
        """Return whether a route that answered is not documented by Prequel."""
        return any(
            route is not None and not route.documented and route.source != CONFIGURED
            for route in (self.answered(p) for p in self._candidates)
        )


class NotFoundError(errors.ConsumerError):
    """A 404: the route or the object is not there; the next candidate route is tried."""

    def __init__(self, message: str, *, said: str) -> None:
        super().__init__(message)
        self.said = said


def configured(test_path: str) -> tuple[Route, ...]:
    """Return the configured test route; ``""`` switches testing off (no route)."""
    return (Route(test_path, CONFIGURED),) if test_path else ()
