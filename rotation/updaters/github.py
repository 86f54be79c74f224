"""GitHub Actions secrets: a repository or environment secret that holds the target's PAT.

Follows ``docs/reference/consumers.md`` (section 4). The value is sealed with the scope's public
key (``GET …/secrets/public-key``, a libsodium sealed box made by PyNaCl) and saved with
``PUT …/secrets/{name}`` and its ``key_id`` [C]. GitHub cannot test a value before saving it
and never returns one, so :meth:`GitHubSecretUpdater.test` tests nothing (the rotator has
already proven the PAT against Databricks) and the confirmation is the secret's ``updated_at``
moving past what it was before the push [I]. The secret must exist before the first run (made
by hand with the current PAT): a mistyped name would otherwise create a secret nobody reads,
and the old PAT, revoked after the "confirmed" push, would cut the real one's workflows off.

Headers ``Accept: application/vnd.github+json``, ``X-GitHub-Api-Version: 2022-11-28``,
``Authorization: Bearer <token>`` (a fine-grained PAT or a GitHub App installation token kept in
Key Vault) [C]. A 403 or 429 that is a rate limit (``Retry-After``, ``x-ratelimit-remaining: 0``
or GitHub's "rate limit" message) is transient: waited for as asked and retried [C].
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

from pydantic import AfterValidator, Field

from rotation import errors
from rotation.backends import retrying
from rotation.backends.http import json_body, retry_after
from rotation.fields import HttpsUrl, Model, SecretName
from rotation.updaters.base import Plugin
from rotation.updaters.http_calls import Reach, refusal

if TYPE_CHECKING:
    import httpx

    from rotation.secret import Secret
    from rotation.updaters.base import UpdaterContext

__all__ = ["PLUGINS", "GitHubSecretUpdater", "GitHubSettings"]

API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"
RIGHT = "the repository permission 'Secrets: Read and write' (fine-grained PAT or GitHub App)"
_KEY_BYTES = 32
_MAX_SAID = 200

Purpose = Literal["read the public key", "read the secret", "save the secret"]


def _secret_name(value: str) -> str:
    ok = value[:1].isalpha() or value[:1] == "_"
    if not ok or not value.replace("_", "a").isalnum() or not value.isascii():
        msg = f"{value!r} is not a GitHub secret name: letters, digits and _, not first a digit"
        raise ValueError(msg)
    if value.upper().startswith("GITHUB_"):
        raise ValueError(f"{value!r}: GitHub refuses secret names that start with GITHUB_")
    return value


def _repo(value: str) -> str:
    if value in {".", ".."}:
        raise ValueError(f"{value!r} is not a repository name")
    return value


def _environment(value: str) -> str:
    if "/" in value or not value.isprintable() or value != value.strip():
        msg = f"{value!r} is not an environment name: no '/', no control characters or padding"
        raise ValueError(msg)
    return value


class GitHubSettings(Model):
    """A ``kind = "github-actions-secret"`` updater table."""

    api_url: HttpsUrl = "https://api.github.com"
    """GitHub Enterprise Server: ``https://<host>/api/v3``."""
    owner: str = Field(pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
    repo: Annotated[str, AfterValidator(_repo)] = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    environment: Annotated[str, AfterValidator(_environment)] | None = Field(
        default=None, min_length=1, max_length=255
    )
    """An environment's secret instead of the repository's."""
    secret_name: Annotated[str, AfterValidator(_secret_name)] = Field(max_length=255)
    token_secret_name: SecretName
    """Key Vault secret holding a fine-grained PAT or a GitHub App installation token."""


def _seal(public_key: bytes, pat: Secret) -> str:
    """Return *pat* in a libsodium sealed box for *public_key*, base64 (GitHub's format)."""
    from nacl.public import PublicKey, SealedBox  # noqa: PLC0415 — not at function indexing

    sealed = SealedBox(PublicKey(public_key)).encrypt(pat.reveal().encode())
    return base64.b64encode(sealed).decode()


def _moment(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _said(body: dict[str, Any], response: httpx.Response) -> str:
    text = " ".join(str(body.get("message") or response.reason_phrase or "").split())
    return text[:_MAX_SAID] or f"HTTP {response.status_code}"


class GitHubSecretUpdater:
    """Seal, save and confirm a PAT in one GitHub Actions secret."""

    def __init__(self, settings: GitHubSettings, context: UpdaterContext) -> None:
        self._s = settings
        self._ctx = context
        owner, repo, env = settings.owner, settings.repo, settings.environment
        scope = f"/repos/{owner}/{repo}" + (
            f"/environments/{quote(env, safe='')}/secrets" if env else "/actions/secrets"
        )
        self._base = settings.api_url + scope
        self._scope = (f"environment {env!r} of " if env else "") + f"{owner}/{repo}"
        self._what = f"GitHub Actions secret {settings.secret_name} of {self._scope}"
        self._reach = Reach(f"GitHub at {settings.api_url}")
        self._before: dt.datetime | None = None
        self._pushed = False

    @property
    def name(self) -> str:
        """Return e.g. ``github-actions-secret:octo/app/DATABRICKS_TOKEN``."""
        env = f":{self._s.environment}" if self._s.environment else ""
        return f"github-actions-secret:{self._s.owner}/{self._s.repo}{env}/{self._s.secret_name}"

    def __repr__(self) -> str:
        return f"GitHubSecretUpdater({self.name!r}, {self._s.api_url!r})"

    async def preflight(self) -> None:
        """Read the public key (proves the token, its rights and the scope) and the secret."""
        await self._public_key()
        if await self._metadata() is None:
            msg = (
                f"{self._what} does not exist. Check secret_name; if it is right, create the "
                "secret once by hand with the PAT in use now (e.g. `gh secret set`), so that a "
                "mistyped name never takes the PAT away from the workflows. Nothing was changed."
            )
            raise errors.ConsumerError(msg)

    async def test(self, pat: Secret) -> bool:
        """Test nothing: GitHub cannot test a value without saving it (return False)."""
        del pat
        return False

    async def push(self, pat: Secret) -> None:
        """Seal *pat* with the scope's current key and save it (again: saves it again)."""
        before = await self._metadata()
        key_id, key = await self._public_key()
        body = {"encrypted_value": _seal(key, pat), "key_id": key_id}
        await self._call("PUT", f"/{self._s.secret_name}", body, "save the secret")
        self._before = _moment(before.get("updated_at")) if before else None
        self._pushed = True

    async def confirm(self, pat: Secret) -> None:
        """Prove the save took: the secret exists and its ``updated_at`` moved past the old one.

        Read again as the retry policy allows while it has not (a read may lag the write [I]).
        """
        del pat  # write-only: GitHub never returns the value
        await retrying(self._ctx.retry, self._saved)

    async def _saved(self) -> None:
        url = f"{self._base}/{self._s.secret_name}"
        try:
            found = await self._send("GET", url, None, "read the secret")
        except _MissingError:
            msg = f"{self._what} is gone right after the push; the old PAT stays alive."
            raise errors.ConsumerError(msg, transient=True) from None
        updated = _moment(found.get("updated_at"))
        if updated is None:
            msg = f"{self._what}: GitHub answered no readable updated_at; the old PAT stays alive."
            raise errors.ConsumerError(msg)
        if self._pushed and self._before is not None and updated <= self._before:
            msg = (
                f"{self._what} still shows updated_at {found.get('updated_at')} after the push: "
                "the new value was not saved. The old PAT stays alive; the next run pushes again."
            )
            raise errors.ConsumerError(msg, transient=True)

    async def _public_key(self) -> tuple[str, bytes]:
        body = await self._call("GET", "/public-key", None, "read the public key")
        key_id, key = body.get("key_id"), body.get("key")
        raw = b""
        if isinstance(key, str):
            try:
                raw = base64.b64decode(key, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
        if not isinstance(key_id, str | int) or not str(key_id) or len(raw) != _KEY_BYTES:
            msg = (
                f"GitHub at {self._s.api_url} answered no usable public key for {self._scope} "
                "(a key_id and a base64 32-byte key); is api_url GitHub's REST API? Nothing was "
                "changed."
            )
            raise errors.ConsumerError(msg)
        return str(key_id), raw

    async def _metadata(self) -> dict[str, Any] | None:
        try:
            return await self._call("GET", f"/{self._s.secret_name}", None, "read the secret")
        except _MissingError:
            return None

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None, purpose: Purpose
    ) -> dict[str, Any]:
        """Send one request, retried on transient failures (every call here is idempotent)."""
        send = partial(self._send, method, self._base + path, body, purpose)
        return await retrying(self._ctx.retry, send)

    async def _send(
        self, method: str, url: str, body: dict[str, Any] | None, purpose: Purpose
    ) -> dict[str, Any]:
        token = await self._ctx.secrets.read(self._s.token_secret_name)
        headers = {
            "Accept": ACCEPT,
            "X-GitHub-Api-Version": API_VERSION,
            "Authorization": f"Bearer {token.reveal()}",
        }
        request = self._ctx.http.request(method, url, json=body, headers=headers)
        response = await self._reach.answer(request)
        answer = json_body(response)
        if response.is_success:
            return answer
        raise self._translate(response, answer, purpose)

    def _translate(
        self, response: httpx.Response, body: dict[str, Any], purpose: Purpose
    ) -> errors.ConsumerError:
        status, said = response.status_code, _said(body, response)
        where = f"GitHub ({purpose}, {self._scope})"
        if (wait := _rate_limited(response, said)) is not False:
            return errors.ConsumerError(
                f"{where} is rate-limited ({status}: {said}); waited as GitHub asked and retried; "
                "the next run resumes.",
                transient=True,
                retry_after=wait,
            )
        return refusal(response, where, said, partial(self._advice, purpose))

    def _advice(
        self, purpose: Purpose, where: str, status: int, said: str
    ) -> errors.ConsumerError | None:
        token = f"the token in Key Vault secret {self._s.token_secret_name!r}"
        if status in {401, 403}:
            fix = (
                f"rejected {token} ({status}: {said}): it is expired, revoked or not a GitHub "
                "token. Store a current fine-grained PAT or GitHub App installation token there."
                if status == 401  # noqa: PLR2004
                else f"{token} may not {purpose} ({status}: {said}). Give it {RIGHT} on "
                f"{self._s.owner}/{self._s.repo}."
            )
            return errors.ConsumerAuthError(f"{where}: {fix}")
        if status == 404 and purpose == "read the secret":  # noqa: PLR2004
            return _MissingError(f"{self._what} does not exist.")
        if status == 404:  # noqa: PLR2004
            return errors.ConsumerAuthError(
                f"{where} answered 404: {self._scope} does not exist or {token} cannot see it. "
                f"Check owner, repo and environment, and that the token's repository access "
                f"includes {self._s.owner}/{self._s.repo} with {RIGHT}. Nothing was changed."
            )
        return None


class _MissingError(errors.ConsumerError):
    """The secret is not there (404 on its metadata)."""


def _rate_limited(response: httpx.Response, said: str) -> float | Literal[False] | None:
    """Return the wait GitHub asks for when *response* is a rate limit (None: unsaid), else False.

    A 429, or a 403 with ``Retry-After``, ``x-ratelimit-remaining: 0`` or "rate limit" in its
    message (GitHub's primary and secondary limits) [C].
    """
    headers = response.headers
    if response.status_code not in {403, 429}:
        return False
    exhausted = headers.get("x-ratelimit-remaining") == "0"
    limited = "retry-after" in headers or exhausted or "rate limit" in said.lower()
    if response.status_code == 403 and not limited:  # noqa: PLR2004
        return False
    if (wait := retry_after(response)) is not None:
        return wait
    reset = headers.get("x-ratelimit-reset", "")
    if exhausted and reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return None


PLUGINS = (Plugin("github-actions-secret", GitHubSettings, GitHubSecretUpdater),)
"""The built-in GitHub kinds (the registry keys each by its ``kind``)."""
