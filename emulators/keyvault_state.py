"""State of the Key Vault emulator: secrets, their versions, soft-deleted secrets.

Names are case-insensitive (as in Key Vault); the case of the first write is kept.
Timestamps are whole epoch seconds of the virtual clock.
"""

from __future__ import annotations

import bisect
import collections
import re
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from emulators.clock import Clock

__all__ = [
    "DeletedSecret",
    "KeyVaultError",
    "KeyVaultState",
    "SecretVersion",
    "ServiceLimits",
    "Throttle",
    "check_content_type",
    "check_name",
    "check_tags",
]

NAME_PATTERN = re.compile(r"[0-9a-zA-Z-]{1,127}")
MAX_VALUE_BYTES = 25 * 1024
MAX_TAGS = 15
MAX_TAG_CHARS = 512
MAX_CONTENT_TYPE_CHARS = 255
RECOVERABLE_DAYS = 90
_HELP = " For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"


class KeyVaultError(Exception):
    """A Key Vault error; routes render it as ``{"error": {"code", "message", "innererror"?}}``."""

    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner

    def body(self) -> dict[str, Any]:
        """Return the JSON error body."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return {"error": error}


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """One version of a secret (a snapshot: changing it changes nothing in the vault)."""

    name: str
    version: str
    value: str = field(repr=False)
    tags: dict[str, str]
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int
    content_type: str | None


@dataclass(frozen=True, slots=True)
class DeletedSecret:
    """When a secret was soft-deleted and when it would be purged."""

    name: str
    deleted_date: int
    scheduled_purge_date: int


@dataclass
class _Secret:
    name: str
    versions: list[SecretVersion] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    deleted: DeletedSecret | None = None


def not_found(name: str, version: str | None = None) -> KeyVaultError:
    """Return the error Key Vault answers for an unknown secret or version."""
    ident = f"{name}/{version}" if version else name
    return KeyVaultError(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {ident} was not found in this key vault. If you recently"
        " deleted this secret you may be able to recover it using the correct recovery"
        f" command.{_HELP}",
    )


def check_name(name: str) -> None:
    """Raise 400 BadParameter unless ``name`` is a valid secret name."""
    if NAME_PATTERN.fullmatch(name) is None:
        raise KeyVaultError(
            400,
            "BadParameter",
            f"The request URI contains an invalid name: {name}. Secret names may contain only"
            " 0-9, a-z, A-Z and -, and be 1 to 127 characters long.",
        )


def check_tags(tags: dict[str, str]) -> None:
    """Raise 400 BadParameter if the tags break Key Vault's limits."""
    if len(tags) > MAX_TAGS:
        raise KeyVaultError(400, "BadParameter", f"A maximum of {MAX_TAGS} tags is allowed.")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise KeyVaultError(400, "BadParameter", "Tag names and values must be strings.")
        if len(key) > MAX_TAG_CHARS or len(value) > MAX_TAG_CHARS:
            raise KeyVaultError(
                400,
                "BadParameter",
                f"Tag names and values may be at most {MAX_TAG_CHARS} characters long.",
            )


def check_content_type(content_type: object) -> None:
    """Raise 400 BadParameter unless ``content_type`` is absent or a string of <= 255 characters.

    The limit is documented ("About Azure Key Vault secrets"); the message is inferred.
    """
    if content_type is None:
        return
    if not isinstance(content_type, str):
        raise KeyVaultError(400, "BadParameter", "contentType must be a string.")
    if len(content_type) > MAX_CONTENT_TYPE_CHARS:
        raise KeyVaultError(
            400,
            "BadParameter",
            f"contentType may be at most {MAX_CONTENT_TYPE_CHARS} characters long.",
        )


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    """Key Vault's service limits for secrets: transactions per vault per ``window`` seconds.

    Documented: 300 secret creates (Set Secret, ``PUT /secrets/{name}``) and 4,000 other
    transactions per 10 s per vault per region; a throttled request answers 429 ``Throttled``
    and does not count. Key Vault documents no ``Retry-After`` on that 429 (a captured answer,
    vcsjones/AzureSignTool#219, has none) and asks clients to back off 1, 2, 4, 8, 16 s:
    ``retry_after`` adds the header (the seconds until the request would be admitted) anyway.
    """

    creates: int = 300
    others: int = 4000
    window: float = 10.0
    retry_after: bool = False


class Throttle:
    """A sliding-window count of admitted requests against `ServiceLimits`; thread-safe.

    *now* is a monotonic clock in seconds (real time: the virtual `Clock` jumps days).
    """

    def __init__(self, limits: ServiceLimits, now: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._now = now
        self._creates: collections.deque[float] = collections.deque()
        self._others: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self.admitted = {"creates": 0, "others": 0}
        """How many requests were admitted so far, by kind."""
        self.throttled = 0
        """How many requests were refused so far."""

    def admit(self, *, create: bool) -> float | None:
        """Count one request and return None, or refuse it: return the seconds until it fits."""
        limits = self.limits
        with self._lock:
            now = self._now()
            log, limit = (
                (self._creates, limits.creates) if create else (self._others, limits.others)
            )
            while log and log[0] <= now - limits.window:
                log.popleft()
            if len(log) < limit:
                log.append(now)
                self.admitted["creates" if create else "others"] += 1
                return None
            self.throttled += 1
            return max(0.0, log[0] + limits.window - now) if log else limits.window

    def counts(self) -> dict[str, int]:
        """Return the requests admitted (``creates``, ``others``) and refused (``throttled``)."""
        with self._lock:
            return {**self.admitted, "throttled": self.throttled}


THROTTLED_MESSAGE = (
    "Request was not processed because too many requests were received."
    " Reason: VaultRequestTypeLimitReached"
)
"""The message of a real 429 (vcsjones/AzureSignTool#219); code ``Throttled``."""


class KeyVaultState:
    """The secrets of one vault; every method is thread-safe.

    ``readers`` / ``writers`` are optional sets of client ids allowed to read (GET and
    list) / write (PUT, PATCH, DELETE, recover, purge); None lets every caller through.
    """

    def __init__(self, *, clock: Clock, tenant_id: str) -> None:
        self.clock = clock
        self.tenant_id = tenant_id
        self.readers: set[str] | None = None
        self.writers: set[str] | None = None
        self._secrets: dict[str, _Secret] = {}
        self._active: list[str] = []
        self._lock = threading.Lock()
        self.throttle: Throttle | None = None
        """Key Vault's service limits, enforced when set (`set_limits`); off by default."""

    def set_limits(
        self, limits: ServiceLimits | None = None, *, now: Callable[[], float] | None = None
    ) -> None:
        """Enforce *limits* from now on (a fresh count), or none when None (the default).

        *now* replaces the monotonic clock the window is counted on (for tests).
        """
        self.throttle = None if limits is None else Throttle(limits, now or time.monotonic)

    def throttle_counts(self) -> dict[str, int]:
        """Return the requests the current limits admitted (creates, others) and refused."""
        if self.throttle is None:
            return {"creates": 0, "others": 0, "throttled": 0}
        return self.throttle.counts()

    # -- helpers for tests ----------------------------------------------------------------

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        tags: dict[str, str] | None = None,
        exp: int | None = None,
        enabled: bool = True,
        content_type: str | None = None,
        nbf: int | None = None,
    ) -> str:
        """Add a new version (bypassing the API's checks except the name); return its id."""
        check_name(name)
        return self.put(
            name,
            value,
            tags=tags or {},
            enabled=enabled,
            nbf=nbf,
            exp=exp,
            content_type=content_type,
        ).version

    def versions(self, name: str) -> list[SecretVersion]:
        """Return every version of a secret, oldest first ([] if unknown or deleted)."""
        with self._lock:
            secret = self._secrets.get(name.lower())
            if secret is None or secret.deleted:
                return []
            return [_copy(v) for v in secret.versions]

    def latest(self, name: str) -> SecretVersion | None:
        """Return the most recently created version, or None."""
        versions = self.versions(name)
        return versions[-1] if versions else None

    def names(self) -> list[str]:
        """Return the names of all secrets that are not deleted, sorted case-insensitively."""
        with self._lock:
            return [self._secrets[key].name for key in self._active]

    def deleted_names(self) -> list[str]:
        """Return the names of soft-deleted secrets."""
        with self._lock:
            return sorted(s.name for s in self._secrets.values() if s.deleted)

    # -- operations the routes use --------------------------------------------------------

    def put(
        self,
        name: str,
        value: str,
        *,
        tags: dict[str, str],
        enabled: bool,
        nbf: int | None,
        exp: int | None,
        content_type: str | None,
    ) -> SecretVersion:
        """Create a new version of ``name`` (409 if the name is soft-deleted)."""
        now = int(self.clock.now())
        with self._lock:
            key = name.lower()
            secret = self._secrets.get(key)
            if secret is not None and secret.deleted is not None:
                raise KeyVaultError(
                    409,
                    "Conflict",
                    f"Secret {secret.name} is currently in a deleted but recoverable state, and"
                    " its name cannot be reused; in this state, the secret can only be recovered"
                    " or purged.",
                    "ObjectIsDeletedButRecoverable",
                )
            if secret is None:
                secret = self._secrets[key] = _Secret(name)
                bisect.insort(self._active, key)
            version = SecretVersion(
                secret.name, uuid.uuid4().hex, value, dict(tags), enabled, nbf, exp, now, now,
                content_type,
            )  # fmt: skip
            secret.index[version.version] = len(secret.versions)
            secret.versions.append(version)
            return _copy(version)

    def get(self, name: str, version: str | None) -> SecretVersion:
        """Return one version (the latest when ``version`` is None) or raise 404."""
        with self._lock:
            secret = self._live(name, version)
            if not version:
                return _copy(secret.versions[-1])
            position = secret.index.get(version.lower())
            if position is None:
                raise not_found(name, version)
            return _copy(secret.versions[position])

    def update(self, name: str, version: str | None, changes: dict[str, Any]) -> SecretVersion:
        """Apply ``enabled``/``nbf``/``exp``/``tags``/``content_type`` changes to a version."""
        now = int(self.clock.now())
        with self._lock:
            secret = self._live(name, version)
            position = (
                len(secret.versions) - 1 if not version else secret.index.get(version.lower())
            )
            if position is None:
                raise not_found(name, version)
            updated = replace(secret.versions[position], **changes, updated=now)
            secret.versions[position] = updated
            return _copy(updated)

    def page_latest(self, after: str | None, limit: int) -> tuple[list[SecretVersion], str | None]:
        """Return up to ``limit`` latest versions of secrets named after ``after``, and a cursor."""
        with self._lock:
            start = bisect.bisect_right(self._active, after.lower()) if after else 0
            keys = self._active[start : start + limit]
            items = [_copy(self._secrets[key].versions[-1]) for key in keys]
            more = start + limit < len(self._active)
            return items, (keys[-1] if more and keys else None)

    def page_versions(
        self, name: str, offset: int, limit: int
    ) -> tuple[list[SecretVersion], int | None]:
        """Return up to ``limit`` versions from ``offset`` (oldest first) and the next offset."""
        with self._lock:
            secret = self._secrets.get(name.lower())
            if secret is None or secret.deleted:
                return [], None
            items = [_copy(v) for v in secret.versions[offset : offset + limit]]
            more = offset + limit < len(secret.versions)
            return items, (offset + limit if more else None)

    def delete(self, name: str) -> tuple[SecretVersion, DeletedSecret]:
        """Soft-delete every version of a secret."""
        now = int(self.clock.now())
        with self._lock:
            secret = self._live(name, None)
            secret.deleted = DeletedSecret(secret.name, now, now + RECOVERABLE_DAYS * 86400)
            self._active.remove(name.lower())
            return _copy(secret.versions[-1]), secret.deleted

    def get_deleted(self, name: str) -> tuple[SecretVersion, DeletedSecret]:
        """Return a soft-deleted secret's latest version and deletion info, or raise 404."""
        with self._lock:
            secret = self._secrets.get(name.lower())
            if secret is None or secret.deleted is None:
                raise KeyVaultError(404, "SecretNotFound", "Deleted Secret not found")
            return _copy(secret.versions[-1]), secret.deleted

    def list_deleted(self) -> list[tuple[SecretVersion, DeletedSecret]]:
        """Return every soft-deleted secret, sorted by name."""
        with self._lock:
            keys = sorted(k for k, s in self._secrets.items() if s.deleted)
            return [(_copy(self._secrets[k].versions[-1]), self._deleted(k)) for k in keys]

    def recover(self, name: str) -> SecretVersion:
        """Undo a soft delete."""
        with self._lock:
            secret = self._secrets.get(name.lower())
            if secret is None or secret.deleted is None:
                raise KeyVaultError(404, "SecretNotFound", "Deleted Secret not found")
            secret.deleted = None
            bisect.insort(self._active, name.lower())
            return _copy(secret.versions[-1])

    def purge(self, name: str) -> None:
        """Remove a soft-deleted secret for good."""
        with self._lock:
            secret = self._secrets.get(name.lower())
            if secret is None or secret.deleted is None:
                raise KeyVaultError(404, "SecretNotFound", "Deleted Secret not found")
            del self._secrets[name.lower()]

    def _live(self, name: str, version: str | None) -> _Secret:
        secret = self._secrets.get(name.lower())
        if secret is None or secret.deleted is not None:
            raise not_found(name, version)
        return secret

    def _deleted(self, key: str) -> DeletedSecret:
        deleted = self._secrets[key].deleted
        if deleted is None:
            raise RuntimeError("secret is not deleted")
        return deleted

    def __repr__(self) -> str:
        with self._lock:
            return f"KeyVaultState(secrets={len(self._secrets)})"


def _copy(version: SecretVersion) -> SecretVersion:
    return replace(version, tags=dict(version.tags))
