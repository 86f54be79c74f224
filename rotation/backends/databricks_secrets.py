"""The workspace's service-principal secrets proxy: a Databricks SP's own OAuth secrets.

``/api/2.0/accounts/servicePrincipals/{numeric id}/credentials/secrets`` on the workspace host
(create, list paged, delete); the numeric id is looked up through SCIM, never configured. Only
workspace (or account) admins may call it. At most 5 secrets per service principal, lifetime at
most 730 days. See ``docs/reference/credential-apis.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from rotation import errors
from rotation.backends.http import (
    UNTRUSTED_ADVICE,
    is_transient_status,
    json_body,
    retry_after,
    untrusted_certificate,
)
from rotation.backends.retry import retrying
from rotation.secret import Secret

if TYPE_CHECKING:
    from rotation.backends.databricks import Workspace
    from rotation.backends.retry import RetryPolicy

__all__ = ["OAuthSecretInfo", "SecretsProxy"]

SECRET_QUOTA = 5
MAX_PAGES = 50


def _time(raw: object) -> float | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True, slots=True)
class OAuthSecretInfo:
    """One OAuth secret as the proxy lists it (``secret`` only in the create answer)."""

    secret_id: str
    created_on: float | None
    expires_on: float | None
    secret: Secret | None = None
    """The value (create answers only), masked."""

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> OAuthSecretInfo:
        """Read the proxy's JSON form."""
        value = data.get("secret")
        return cls(
            secret_id=str(data.get("id", "")),
            created_on=_time(data.get("create_time")),
            expires_on=_time(data.get("expire_time")),
            secret=Secret(value) if isinstance(value, str) and value else None,
        )


class SecretsProxy:
    """One service principal's OAuth secrets, managed with a bearer token of a workspace admin."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        workspace: Workspace,
        application_id: str,
        auth: httpx.Auth,
        retry: RetryPolicy,
    ) -> None:
        self._http = http
        self._ws = workspace
        self._app = application_id
        self._auth = auth
        self._retry = retry
        self._path: str | None = None

    def __repr__(self) -> str:
        return f"SecretsProxy({self._ws.url!r}, {self._app!r})"

    async def list(self) -> list[OAuthSecretInfo]:
        """List every live secret, following ``next_page_token`` to the end."""
        out: list[OAuthSecretInfo] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            query = {"page_size": "100", **({"page_token": token} if token else {})}
            path = f"{await self._secrets()}?{urlencode(query)}"
            data = await retrying(self._retry, lambda p=path: self._call("GET", p))  # type: ignore[misc]
            out += [OAuthSecretInfo.from_api(s) for s in data.get("secrets") or []]
            token = data.get("next_page_token") or None
            if token is None:
                return out
        msg = f"Databricks listed more than {MAX_PAGES} pages of OAuth secrets for {self._app}."
        raise errors.CredentialRotationError(msg)

    async def create(self, lifetime_seconds: int) -> OAuthSecretInfo:
        """Create a secret (never repeated after an unknown outcome: a later run sweeps it)."""
        path, body = await self._secrets(), {"lifetime": f"{lifetime_seconds}s"}
        data = await retrying(
            self._retry, lambda: self._call("POST", path, body, create=True), idempotent=False
        )
        return OAuthSecretInfo.from_api(data)

    async def delete(self, secret_id: str) -> bool:
        """Delete a secret; False when it was already gone (404)."""
        path = f"{await self._secrets()}/{secret_id}"
        try:
            await retrying(self._retry, lambda: self._call("DELETE", path))
        except _GoneError:
            return False
        return True

    async def _secrets(self) -> str:
        if self._path is None:
            try:
                found = await self._ws.service_principal_id(self._auth, self._app)
            except errors.DatabricksError as exc:  # SCIM lists principals for admins only
                if exc.transient:
                    raise
                raise self._not_admin(exc.kind) from None
            if found is None:
                msg = f"Service principal {self._app} is not in workspace {self._ws.url}."
                raise errors.PrincipalNotInWorkspaceError(msg)
            self._path = f"/api/2.0/accounts/servicePrincipals/{found}/credentials/secrets"
        return self._path

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, create: bool = False
    ) -> dict[str, Any]:
        try:
            response = await self._http.request(
                method, self._ws.url + path, auth=self._auth, json=body
            )
        except httpx.TransportError as exc:
            if (why := untrusted_certificate(exc)) is not None:
                msg = f"Databricks workspace {self._ws.url}: its TLS certificate is not trusted "
                raise errors.CredentialRotationError(f"{msg}({why}); {UNTRUSTED_ADVICE}.") from None
            msg = f"Could not reach Databricks workspace {self._ws.url} ({type(exc).__name__}); "
            error = errors.CredentialRotationError(msg + "a later run retries.", transient=True)
            error.outcome_unknown = create and not isinstance(exc, httpx.ConnectError)
            raise error from None
        if response.is_success:
            return json_body(response)
        error = self._error(response, method)
        error.outcome_unknown = create and response.status_code != 429  # noqa: PLR2004
        raise error

    def _not_admin(self, why: str) -> errors.CredentialRightsError:
        return errors.CredentialRightsError(
            f"Databricks refused to manage the OAuth secrets of service principal {self._app} "
            f"({why}): make it a workspace admin (Settings → Identity and access → Groups → "
            "admins → Add members) or set rotate_credential = false; nothing was created."
        )

    def _error(self, response: httpx.Response, method: str) -> errors.CredentialRotationError:
        status = response.status_code
        body = json_body(response)
        code = str(body.get("error_code", ""))
        app = self._app
        if status == 404 and method == "DELETE":  # noqa: PLR2004
            return _GoneError("already gone")
        if status in {401, 403}:
            return self._not_admin(f"{status} {code}")
        if code in {"QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED"}:
            return errors.CredentialQuotaError(
                f"Service principal {app} already holds {SECRET_QUOTA} OAuth secrets: delete one "
                "it no longer uses (Settings → Identity and access → Service principals → "
                "Secrets); nothing was created."
            )
        transient = is_transient_status(status)
        return errors.CredentialRotationError(
            f"Databricks answered {status} ({code}) managing the OAuth secrets of {app}; "
            + ("a later run retries." if transient else "check the service principal."),
            transient=transient,
            retry_after=retry_after(response),
        )


class _GoneError(errors.CredentialRotationError):
    """The secret is not there: nothing to delete."""
