"""State of the Prequel emulator: API keys, Databricks sources, destinations and import sources.

An import source (Prequel's import product) is stored apart from the export sources, under its own
ids, in the same layout: the Databricks settings under ``databricks`` with the PAT at
``databricks.access_token_auth.access_token``. That layout is inferred for import sources from the
export side (``docs/reference/prequel-api.md`` confirms it for Prequel's Databricks
connections only).
"""

from __future__ import annotations

import copy
import secrets
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from emulators.registry import SecretRegistry

__all__ = ["Connection", "ConnectionTest", "PrequelState", "deep_merge"]


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``changes`` merged in: objects merge recursively, the rest replaces."""
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def token_of(config: dict[str, Any]) -> str | None:
    """Return the PAT at ``databricks.access_token_auth.access_token``, if any."""
    auth = (config.get("databricks") or {}).get("access_token_auth") or {}
    token = auth.get("access_token") if isinstance(auth, dict) else None
    return token if isinstance(token, str) else None


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``config`` without the access token (as Prequel's GETs show it)."""
    shown = copy.deepcopy(config)
    auth = (shown.get("databricks") or {}).get("access_token_auth")
    if isinstance(auth, dict):
        auth.pop("access_token", None)
    return shown


@dataclass(frozen=True, slots=True)
class ConnectionTest:
    """One connection test Prequel ran: which token, against which host, with what result.

    ``token_saved`` tells whether the tested token was the one stored at the time (False for a
    test of changed, unsaved fields and for a test of an unsaved connection).
    """

    kind: str
    connection_id: str | None
    host: str
    access_token: str | None = field(repr=False)
    ok: bool
    message: str
    token_saved: bool = False


class Connection:
    """A Prequel source, destination or import source; the settings sit under ``databricks``.

    ``kind`` is ``source``, ``destination`` or ``import_source``.
    """

    def __init__(self, kind: str, config: dict[str, Any], lock: threading.Lock) -> None:
        self.kind = kind
        self.id: str = config["id"]
        self._config = config
        self._history: list[str] = []
        self._lock = lock
        token = token_of(config)
        if token:
            self._history.append(token)

    @property
    def config(self) -> dict[str, Any]:
        """A deep copy of the stored config, token included."""
        with self._lock:
            return copy.deepcopy(self._config)

    @property
    def access_token(self) -> str:
        """The PAT currently stored ("" if the config holds none)."""
        with self._lock:
            return token_of(self._config) or ""

    @property
    def history(self) -> list[str]:
        """Every PAT stored so far, oldest first (for checking that no outage happened)."""
        with self._lock:
            return list(self._history)

    def apply(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge ``changes`` into the stored config and return the redacted result."""
        with self._lock:
            before = token_of(self._config)
            changes = {k: v for k, v in changes.items() if k != "id"}
            self._config = deep_merge(self._config, changes)
            after = token_of(self._config)
            if after and after != before:
                self._history.append(after)
            return redact(self._config)

    def merged(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Return the config as it would be with ``changes``, without saving."""
        with self._lock:
            return deep_merge(self._config, changes)

    def __repr__(self) -> str:
        return f"Connection(kind={self.kind!r}, id={self.id!r})"


class PrequelState:
    """API keys, sources, destinations and import sources; thread-safe.

    ``ca_path`` is the CA the emulator trusts when ``test-connection`` calls Databricks.
    ``documented_only`` (settable while running): serve only the routes Prequel documents (in
    its docs or its own client) and answer the inferred ones 404, as a Prequel without them
    would — ``/sources/{id}`` (and its ``test-connection``), ``/destinations/{id}/test-connection``
    and ``GET /import/sources/{id}``.
    """

    def __init__(self, *, registry: SecretRegistry, ca_path: Path | None = None) -> None:
        self.ca_path = ca_path
        self.documented_only = False
        self._registry = registry
        self._keys: set[str] = set()
        self._connections: dict[tuple[str, str], Connection] = {}
        self._tests: list[ConnectionTest] = []
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None

    def add_api_key(self) -> str:
        """Create an API key (``sk_staging_...``)."""
        key = "sk_staging_" + secrets.token_hex(24)
        self._registry.add(key, "api_key")
        with self._lock:
            self._keys.add(key)
        return key

    def revoke_api_key(self, key: str) -> None:
        """Make an API key unusable."""
        with self._lock:
            self._keys.discard(key)

    def key_valid(self, key: str) -> bool:
        """Tell whether ``key`` is a live API key."""
        with self._lock:
            return any(secrets.compare_digest(key, k) for k in self._keys)

    def add_source(
        self,
        *,
        host: str,
        http_path: str = "/sql/1.0/warehouses/abc",
        access_token: str,
        source_id: str | None = None,
    ) -> str:
        """Add a Databricks source; ``host`` is ``127.0.0.1:PORT`` (no scheme). Return its id."""
        return self._add("source", host, http_path, access_token, source_id)

    def add_destination(
        self,
        *,
        host: str,
        http_path: str = "/sql/1.0/warehouses/abc",
        access_token: str,
        destination_id: str | None = None,
    ) -> str:
        """Add a Databricks destination, like `add_source`. Return its id."""
        return self._add("destination", host, http_path, access_token, destination_id)

    def add_import_source(
        self,
        *,
        host: str,
        http_path: str = "/sql/1.0/warehouses/abc",
        access_token: str,
        source_id: str | None = None,
    ) -> str:
        """Add a Databricks source of Prequel's import product, like `add_source`. Return its id."""
        return self._add("import_source", host, http_path, access_token, source_id)

    def source(self, source_id: str) -> Connection:
        """Return a source by id (KeyError if unknown)."""
        return self._get("source", source_id)

    def destination(self, destination_id: str) -> Connection:
        """Return a destination by id (KeyError if unknown)."""
        return self._get("destination", destination_id)

    def import_source(self, source_id: str) -> Connection:
        """Return an import source by id (KeyError if unknown)."""
        return self._get("import_source", source_id)

    @property
    def sources(self) -> dict[str, Connection]:
        """All sources by id (a new dict; the `Connection` objects are live)."""
        return {c.id: c for c in self.connections("source")}

    @property
    def destinations(self) -> dict[str, Connection]:
        """All destinations by id (a new dict; the `Connection` objects are live)."""
        return {c.id: c for c in self.connections("destination")}

    @property
    def import_sources(self) -> dict[str, Connection]:
        """All import sources by id (a new dict; the `Connection` objects are live)."""
        return {c.id: c for c in self.connections("import_source")}

    def connections(self, kind: str) -> list[Connection]:
        """Return all connections of one kind, in creation order."""
        with self._lock:
            return [c for (k, _), c in self._connections.items() if k == kind]

    def find(self, kind: str, connection_id: str) -> Connection | None:
        """Return a connection of one kind by id, or None."""
        with self._lock:
            return self._connections.get((kind, connection_id))

    def record_test(self, test: ConnectionTest) -> None:
        """Remember a connection test."""
        with self._lock:
            self._tests.append(test)

    def tests(self) -> list[ConnectionTest]:
        """Return every connection test run so far, oldest first."""
        with self._lock:
            return list(self._tests)

    def ssl_context(self) -> ssl.SSLContext:
        """Return the client TLS context used to reach Databricks (trusting ``ca_path``)."""
        with self._lock:
            if self._ssl is None:
                cafile = str(self.ca_path) if self.ca_path else None
                self._ssl = ssl.create_default_context(cafile=cafile)
            return self._ssl

    def _add(self, kind: str, host: str, http_path: str, token: str, ident: str | None) -> str:
        ident = ident or str(uuid.uuid4())
        config: dict[str, Any] = {
            "id": ident,
            "name": f"databricks-{kind}-{ident[:8]}",
            "vendor": "databricks",
            "databricks": {
                "host": host,
                "port": 443,
                "http_path": http_path,
                "catalog": "main",
                "schema": "default",
                "metastore": "unity_catalog",
                "auth_method": "access_token_auth",
                "access_token_auth": {"access_token": token},
            },
        }
        with self._lock:
            if (kind, ident) in self._connections:
                raise ValueError(f"{kind} {ident} already exists")
            self._connections[kind, ident] = Connection(kind, config, self._lock)
        return ident

    def _get(self, kind: str, ident: str) -> Connection:
        connection = self.find(kind, ident)
        if connection is None:
            raise KeyError(f"no {kind} {ident}")
        return connection

    def __repr__(self) -> str:
        with self._lock:
            return f"PrequelState(keys={len(self._keys)}, connections={len(self._connections)})"
