"""Kind ``azure-devops-variable-group``: the PAT in a secret variable of an Azure DevOps group.

Contract (``docs/reference/consumers.md`` section 1): the group is read project-scoped
(``GET {org}/{project}/_apis/distributedtask/variablegroups/{id}``) and written whole,
organisation-scoped (``PUT {org}/_apis/distributedtask/variablegroups/{id}?api-version=7.1``),
with the ``variableGroupProjectReferences`` the read returned (a PUT without them is refused).
Variables left out of a PUT are deleted, and secret values read back as ``null``.

Whether a secret sent back as ``null`` keeps its value is not documented (A6), so the updater
refuses — at preflight, before anything is minted — a group that holds secret variables other
than its own, unless the table says ``other_secrets = "kept-by-null"`` (the user confirmed that
reading in their organisation). It never writes back a value it read for a secret. Azure DevOps
cannot test a value before saving it (``test`` returns False); ``confirm`` re-reads the group:
the variable is there, secret, and the group's ``modifiedOn`` moved. A 203 answer (a sign-in
page) or any HTML answer is an authentication failure (A10).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import quote, urlsplit

from pydantic import Field, model_validator

from rotation import errors
from rotation.backends import retrying
from rotation.fields import Guid, HttpsUrl, Model, SecretName
from rotation.updaters.base import Plugin
from rotation.updaters.devops_auth import DevOpsToken
from rotation.updaters.http_calls import Reach, json_answer

if TYPE_CHECKING:
    from rotation.secret import Secret
    from rotation.updaters.base import UpdaterContext

__all__ = ["PLUGIN", "DevOpsSettings", "DevOpsUpdater"]

API_VERSION = "7.1"
KEPT_BY_NULL = "kept-by-null"
_NON_AUTHORITATIVE = 203


class DevOpsSettings(Model):
    """A ``kind = "azure-devops-variable-group"`` table."""

    organization_url: HttpsUrl
    """``https://dev.azure.com/{organization}``."""
    project: str = Field(min_length=1, max_length=64, pattern=r"^[^/\\?#%]+$")
    group_id: int = Field(gt=0)
    variable: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,255}$")
    """The secret variable that holds the PAT (it must exist and be secret)."""
    auth: Literal["managed-identity", "client-secret"] = "managed-identity"
    client_id: Guid | None = None
    """A user-assigned managed identity's client id (none: the system-assigned one), or the
    app registration's client id with ``auth = "client-secret"``."""
    tenant_id: Guid | None = None
    client_secret_name: SecretName | None = None
    authority_host: HttpsUrl = "https://login.microsoftonline.com"
    other_secrets: Literal["refuse", "kept-by-null"] = "refuse"
    """``"kept-by-null"``: you confirmed that Azure DevOps keeps a secret sent back as null."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        path = urlsplit(self.organization_url).path.strip("/")
        if not path or "/" in path:
            msg = "organization_url must be https://dev.azure.com/{organization} (one path part)"
            raise ValueError(msg)
        client_secret = (self.tenant_id, self.client_id, self.client_secret_name)
        if self.auth == "client-secret" and None in client_secret:
            msg = 'auth = "client-secret" needs tenant_id, client_id and client_secret_name'
            raise ValueError(msg)
        if self.auth == "managed-identity" and (self.tenant_id or self.client_secret_name):
            msg = 'auth = "managed-identity" takes only client_id (tenant_id, client_secret_name: '
            msg += 'set auth = "client-secret")'
            raise ValueError(msg)
        return self

    @property
    def organization(self) -> str:
        """Return the organisation's name (the URL's path)."""
        return urlsplit(self.organization_url).path.strip("/")


class DevOpsUpdater:
    """Write a PAT into one secret variable of an Azure DevOps variable group."""

    def __init__(self, settings: DevOpsSettings, context: UpdaterContext) -> None:
        self._s = settings
        self._ctx = context
        self._token = DevOpsToken(settings, context)
        self._what = f"Azure DevOps variable group {settings.group_id} of {settings.organization}"
        url = settings.organization_url
        self._reach = Reach(url, f"{self._what}: the TLS certificate of {url}", "retrying")
        self._before: str | None = None
        """The group's ``modifiedOn`` read before this updater's last PUT."""

    @property
    def name(self) -> str:
        """Return e.g. ``azure-devops-variable-group:contoso/12/DATABRICKS_TOKEN``."""
        s = self._s
        return f"{PLUGIN.kind}:{s.organization}/{s.group_id}/{s.variable}"

    def __repr__(self) -> str:
        return f"DevOpsUpdater({self.name!r})"

    async def preflight(self) -> None:
        """Read the group: proves the token, membership and ids; check it is safe to write."""
        self._writable(await self._read())

    async def test(self, pat: Secret) -> bool:
        """Return False: Azure DevOps only stores values, it cannot test one."""
        del pat
        return False

    async def push(self, pat: Secret) -> None:
        """Read the group again, then PUT it whole with only the PAT's variable changed."""
        group = await self._read()
        self._writable(group)
        variables: dict[str, Any] = {}
        for name, var in group["variables"].items():
            if name == self._s.variable:
                variables[name] = {"value": pat.reveal(), "isSecret": True}
            elif var.get("isSecret"):  # only with other_secrets = "kept-by-null"
                variables[name] = {**var, "value": None, "isSecret": True}
            else:
                variables[name] = dict(var)
        kept = ("name", "description", "type", "providerData")
        body: dict[str, Any] = {k: group[k] for k in kept if k in group}
        body |= {
            "variables": variables,
            "variableGroupProjectReferences": group["variableGroupProjectReferences"],
        }
        self._before = group.get("modifiedOn")
        url = f"{self._s.organization_url}/_apis/distributedtask/variablegroups/{self._s.group_id}"
        await retrying(self._ctx.retry, partial(self._send, "PUT", url, body))

    async def confirm(self, pat: Secret) -> None:
        """Re-read the group: the variable is there, secret, and the group changed."""
        del pat  # a secret's value never comes back
        group = await self._read()
        var = group["variables"].get(self._s.variable)
        moved = self._before is None or group.get("modifiedOn") != self._before
        if not isinstance(var, dict) or var.get("isSecret") is not True or not moved:
            msg = (
                f"{self._what} does not show the new PAT after the write (variable "
                f"{self._s.variable!r} missing, not secret, or the group unchanged); the previous "
                "PAT stays valid. Check the group in Pipelines → Library."
            )
            raise errors.ConsumerError(msg)

    def _writable(self, group: dict[str, Any]) -> None:
        """Raise unless writing the whole *group* back can lose nothing."""
        var = group["variables"].get(self._s.variable)
        fix = "nothing was changed"
        if not isinstance(var, dict):
            msg = f"{self._what} has no variable {self._s.variable!r}: add it as a secret "
            raise errors.ConsumerError(msg + f"holding the current PAT, or fix `variable`; {fix}.")
        if var.get("isSecret") is not True:
            msg = f"{self._what}: variable {self._s.variable!r} is not secret; mark it secret "
            raise errors.ConsumerError(msg + f"(the lock icon in Pipelines → Library); {fix}.")
        if group.get("type", "Vsts") != "Vsts":
            msg = f"{self._what} is linked to {group.get('type')} (its values come from there): "
            raise errors.ConsumerError(msg + f"keep the PAT in a plain group; {fix}.")
        if not group.get("variableGroupProjectReferences"):
            msg = f"{self._what} shows no project references, which a write must send back; {fix}."
            raise errors.ConsumerError(msg)
        others = sorted(
            n
            for n, v in group["variables"].items()
            if n != self._s.variable and isinstance(v, dict) and v.get("isSecret")
        )
        if others and self._s.other_secrets != KEPT_BY_NULL:
            msg = (
                f"{self._what} holds other secret variables ({', '.join(others)}); a write "
                "replaces the whole group, and whether Azure DevOps keeps a secret sent back "
                "empty is not documented, so the rotator will not write to it. Move the PAT to a "
                'group of its own, or set other_secrets = "kept-by-null" once you confirmed that '
                f"reading in your organisation; {fix}."
            )
            raise errors.ConsumerError(msg)

    async def _read(self) -> dict[str, Any]:
        s = self._s
        url = (
            f"{s.organization_url}/{quote(s.project, safe='')}"
            f"/_apis/distributedtask/variablegroups/{s.group_id}"
        )
        group = await retrying(self._ctx.retry, partial(self._send, "GET", url, None))
        if not isinstance(group.get("variables"), dict):
            msg = f"{self._what} answered without its variables; nothing was changed."
            raise errors.ConsumerError(msg)
        return group

    async def _send(self, method: str, url: str, body: dict[str, Any] | None) -> dict[str, Any]:
        token = await self._token.get()
        headers = {"Authorization": f"Bearer {token.reveal()}", "Accept": "application/json"}
        params = {"api-version": API_VERSION}
        request = self._ctx.http.request(method, url, params=params, json=body, headers=headers)
        response = await self._reach.answer(request)
        if response.status_code == _NON_AUTHORITATIVE or "html" in response.headers.get(
            "content-type", ""
        ):
            raise self._signed_out(response.status_code)
        return json_answer(response, f"{self._what} ({method})", self._advice)

    def _signed_out(self, status: int) -> errors.ConsumerAuthError:
        return errors.ConsumerAuthError(
            f"{self._what} answered {status} with a sign-in page: it does not accept the token "
            f"of {self._token.who}. Add that identity to organisation {self._s.organization} "
            "(Organization settings → Users) and check tenant; nothing was changed."
        )

    def _advice(self, where: str, status: int, said: str) -> errors.ConsumerError:
        where = f"{where} answered {status}: {said}"
        if status == 401:  # noqa: PLR2004
            return errors.ConsumerAuthError(
                f"{where}. Add {self._token.who} to the organisation (Organization settings → "
                "Users); nothing was changed."
            )
        if status == 403:  # noqa: PLR2004
            return errors.ConsumerAuthError(
                f"{where}. Give {self._token.who} the Administrator role on the group "
                "(Pipelines → Library → the group → Security)."
            )
        if status == 404:  # noqa: PLR2004
            return errors.ConsumerError(
                f"{where}. Check organization_url, project and group_id; nothing was changed."
            )
        return errors.ConsumerError(f"{where}.")


PLUGIN = Plugin("azure-devops-variable-group", DevOpsSettings, DevOpsUpdater)
