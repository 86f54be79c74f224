"""State of the GitHub emulator: tokens, repositories, environments and Actions secrets.

Each repository and each environment holds a real Curve25519 key pair (PyNaCl, libsodium): a
client seals a value with the public key (``crypto_box_seal``), the emulator opens it with the
private key, so tests can read the value that arrived — which GitHub itself never shows.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

if TYPE_CHECKING:
    from emulators.clock import Clock
    from emulators.registry import SecretRegistry

__all__ = ["ActionsSecret", "GitHubState", "KeyPair", "Scope"]

Scope = tuple[str, str, str | None]
"""``(owner, repo, environment or None)``: where a secret lives."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A scope's current key: ``key_id`` and the libsodium key pair."""

    key_id: str
    private: PrivateKey = field(repr=False)

    @property
    def public_b64(self) -> str:
        """The public key, base64 (what ``GET …/public-key`` answers as ``key``)."""
        return base64.b64encode(bytes(self.private.public_key)).decode()

    def open(self, encrypted_b64: str) -> str | None:
        """Decrypt a base64 sealed box; None if it is not one for this key."""
        try:
            raw = base64.b64decode(encrypted_b64, validate=True)
            return SealedBox(self.private).decrypt(raw).decode("utf-8")
        except (ValueError, CryptoError):
            return None


@dataclass(slots=True)
class ActionsSecret:
    """A secret as stored: its decrypted value (tests only), timestamps and every value held."""

    name: str
    value: str = field(repr=False)
    created_at: str
    updated_at: str
    history: list[str] = field(default_factory=list, repr=False)

    def as_json(self) -> dict[str, str]:
        """Return what ``GET …/secrets/{name}`` answers: never the value."""
        return {"name": self.name, "created_at": self.created_at, "updated_at": self.updated_at}


@dataclass
class _Token:
    repos: frozenset[str] | None
    write: bool


class GitHubState:
    """Tokens, repositories, environments, their keys and secrets; thread-safe."""

    def __init__(self, *, registry: SecretRegistry, clock: Clock) -> None:
        self._registry = registry
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._keys: dict[Scope, KeyPair] = {}
        self._secrets: dict[Scope, dict[str, ActionsSecret]] = {}
        self.lock = threading.RLock()

    def add_token(self, repos: list[str] | None = None, *, write: bool = True) -> str:
        """Issue a fine-grained PAT for ``repos`` (``owner/repo``; None: all) and return it.

        ``write=False`` gives a token with only read access to Actions secrets.
        """
        token = "github_pat_" + secrets.token_urlsafe(60)
        self._registry.add(token, "github_token")
        chosen = frozenset(r.lower() for r in repos) if repos is not None else None
        with self.lock:
            self._tokens[token] = _Token(chosen, write)
        return token

    def revoke_token(self, token: str) -> None:
        """Make a token unusable."""
        with self.lock:
            self._tokens.pop(token, None)

    def token_access(self, token: str, owner: str, repo: str) -> str | None:
        """``"write"``, ``"read"`` or None (unknown token, or no access to the repository)."""
        with self.lock:
            known = next(
                (t for v, t in self._tokens.items() if secrets.compare_digest(v, token)), None
            )
        if known is None:
            return None
        if known.repos is not None and f"{owner}/{repo}".lower() not in known.repos:
            return "none"
        return "write" if known.write else "read"

    def token_known(self, token: str) -> bool:
        """Tell whether ``token`` is a live token."""
        with self.lock:
            return any(secrets.compare_digest(v, token) for v in self._tokens)

    def add_repository(self, owner: str, repo: str) -> None:
        """Create a repository (with its Actions key pair)."""
        self._add_scope((owner.lower(), repo.lower(), None))

    def add_environment(self, owner: str, repo: str, environment: str) -> None:
        """Create an environment of an existing repository (with its own key pair)."""
        with self.lock:
            if (owner.lower(), repo.lower(), None) not in self._keys:
                raise KeyError(f"no repository {owner}/{repo}")
        self._add_scope((owner.lower(), repo.lower(), environment))

    def has_scope(self, scope: Scope) -> bool:
        """Tell whether a repository (environment None) or environment exists."""
        with self.lock:
            return _norm(scope) in self._keys

    def key(self, owner: str, repo: str, environment: str | None = None) -> KeyPair:
        """Return the current key pair of a repository or environment (KeyError if unknown)."""
        with self.lock:
            return self._keys[_norm((owner, repo, environment))]

    def rotate_key(self, owner: str, repo: str, environment: str | None = None) -> KeyPair:
        """Replace a scope's key pair (values sealed for the old one are then refused)."""
        scope = _norm((owner, repo, environment))
        with self.lock:
            if scope not in self._keys:
                raise KeyError(f"no such repository or environment: {scope}")
            self._keys[scope] = _new_key()
            return self._keys[scope]

    def set_secret(
        self, owner: str, repo: str, name: str, value: str, environment: str | None = None
    ) -> bool:
        """Store a secret's value; return True if it was created, False if updated."""
        scope = _norm((owner, repo, environment))
        if self._registry.kind_of(value) is None:  # a PAT keeps its kind
            self._registry.add(value, "actions_secret")
        with self.lock:
            held = self._secrets.setdefault(scope, {})
            current = held.get(name.upper())
            if current is None:
                now = self._now()
                held[name.upper()] = ActionsSecret(name.upper(), value, now, now, [value])
                return True
            current.value = value
            current.history.append(value)
            current.updated_at = self._now(after=current.updated_at)
            return False

    def secret(
        self, owner: str, repo: str, name: str, environment: str | None = None
    ) -> ActionsSecret:
        """Return a stored secret (KeyError if none); the object is live."""
        with self.lock:
            return self._secrets[_norm((owner, repo, environment))][name.upper()]

    def find_secret(self, scope: Scope, name: str) -> ActionsSecret | None:
        """Return a stored secret or None."""
        with self.lock:
            return self._secrets.get(_norm(scope), {}).get(name.upper())

    def _add_scope(self, scope: Scope) -> None:
        with self.lock:
            if scope in self._keys:
                raise ValueError(f"{scope} already exists")
            self._keys[scope] = _new_key()
            self._secrets[scope] = {}

    def _now(self, after: str | None = None) -> str:
        """Virtual time as GitHub writes it (seconds); strictly later than ``after``."""
        moment = dt.datetime.fromtimestamp(int(self._clock.now()), dt.UTC)
        if after is not None:
            earlier = dt.datetime.fromisoformat(after)
            moment = max(moment, earlier + dt.timedelta(seconds=1))
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def __repr__(self) -> str:
        with self.lock:
            return f"GitHubState(tokens={len(self._tokens)}, scopes={len(self._keys)})"


def _norm(scope: Scope) -> Scope:
    owner, repo, environment = scope
    return owner.lower(), repo.lower(), environment


def _new_key() -> KeyPair:
    return KeyPair(str(secrets.randbelow(10**18)), PrivateKey.generate())
