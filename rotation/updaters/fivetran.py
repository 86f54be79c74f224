"""Kind ``fivetran-destination``: the PAT of a Fivetran Databricks destination.

Contract (``docs/reference/consumers.md`` section 2): HTTP Basic with the API key and secret
(both in Key Vault), ``Accept: application/json;version=2``. Fivetran cannot test a PAT before
saving it (``test`` returns False): ``push`` saves it with ``PATCH /v1/destinations/{id}``
(``config.personal_access_token``, ``run_setup_tests: false``), ``confirm`` runs the setup tests
(``POST /v1/destinations/{id}/test``) and fails with ``ConsumerRejectedTokenError`` when one
fails. The rotation then calls ``restore`` with the previous PAT (still alive), which PATCHes it
back. Setup tests are rate limited (250 a minute): a 429 is retried after its ``Retry-After``
(longer waits fail the run; the next one resumes). The token reads back as ``"******"``; the
updater sends only PATs it was given, never a value it read.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import Field

from rotation import errors
from rotation.backends import retrying
from rotation.fields import HttpsUrl, Model, SecretName
from rotation.updaters.base import Plugin
from rotation.updaters.http_calls import Reach, json_answer

if TYPE_CHECKING:
    from rotation.secret import Secret
    from rotation.updaters.base import UpdaterContext

__all__ = ["PLUGIN", "FivetranSettings", "FivetranUpdater"]

ACCEPT = "application/json;version=2"
_FAILED = frozenset({"FAILED", "JOB_FAILED"})


class FivetranSettings(Model):
    """A ``kind = "fivetran-destination"`` table."""

    api_url: HttpsUrl = "https://api.fivetran.com"
    destination_id: str = Field(pattern=r"^[A-Za-z0-9_]{1,64}$")
    api_key_secret_name: SecretName
    api_secret_secret_name: SecretName


class FivetranUpdater:
    """Save, test and (when the test fails) put back the PAT of one Fivetran destination."""

    def __init__(self, settings: FivetranSettings, context: UpdaterContext) -> None:
        self._s = settings
        self._ctx = context
        self._what = f"Fivetran destination {settings.destination_id}"
        self._url = f"{settings.api_url}/v1/destinations/{settings.destination_id}"
        self._reach = Reach(f"Fivetran at {settings.api_url}", hint="retrying")

    @property
    def name(self) -> str:
        """Return e.g. ``fivetran-destination:decent_dropsy``."""
        return f"{PLUGIN.kind}:{self._s.destination_id}"

    def __repr__(self) -> str:
        return f"FivetranUpdater({self.name!r}, {self._s.api_url!r})"

    async def preflight(self) -> None:
        """Read the destination: proves the API key, the id, and that it uses a PAT."""
        data = (await self._call("GET", self._url, None)).get("data")
        config = data.get("config") if isinstance(data, dict) else None
        if not isinstance(config, dict):
            msg = f"{self._what} answered without its config; nothing was changed."
            raise errors.ConsumerError(msg)
        auth_type = config.get("auth_type", "PERSONAL_ACCESS_TOKEN")
        if auth_type != "PERSONAL_ACCESS_TOKEN":
            msg = (
                f"{self._what} signs in with {auth_type}, not a personal access token; remove "
                "this updater or switch the destination to PERSONAL_ACCESS_TOKEN."
            )
            raise errors.ConsumerError(msg)

    async def test(self, pat: Secret) -> bool:
        """Return False: Fivetran saves a PAT before it can test it."""
        del pat
        return False

    async def push(self, pat: Secret) -> None:
        """Save *pat* without running the setup tests (``confirm`` runs them)."""
        await self._save(pat)

    async def restore(self, previous: Secret) -> None:
        """Save *previous* again after the new PAT failed its setup tests."""
        await self._save(previous)

    async def confirm(self, pat: Secret) -> None:
        """Run the setup tests on the saved PAT; ``ConsumerRejectedTokenError`` if one fails."""
        del pat
        data = (await self._call("POST", f"{self._url}/test", {})).get("data")
        data = data if isinstance(data, dict) else {}
        tests = [t for t in data.get("setup_tests") or [] if isinstance(t, dict)]
        failed = [t for t in tests if str(t.get("status", "")).upper() in _FAILED]
        status = data.get("setup_status")
        if failed or status != "connected":
            said = "; ".join(f"{t.get('title')}: {t.get('message') or 'failed'}" for t in failed)
            msg = (
                f"{self._what} failed its setup tests with the new PAT (setup_status {status}"
                f"{': ' + said if said else ''}). Check the service principal's access to the "
                "SQL warehouse; the previous PAT is put back and stays valid."
            )
            raise errors.ConsumerRejectedTokenError(msg)

    async def _save(self, pat: Secret) -> None:
        if not pat.reveal().strip("*"):
            msg = f"refusing to save a masked value on {self._what}"
            raise errors.ConsumerError(msg)
        body = {"config": {"personal_access_token": pat.reveal()}, "run_setup_tests": False}
        await self._call("PATCH", self._url, body)

    async def _call(self, method: str, url: str, body: dict[str, Any] | None) -> dict[str, Any]:
        return await retrying(self._ctx.retry, partial(self._send, method, url, body))

    async def _send(self, method: str, url: str, body: dict[str, Any] | None) -> dict[str, Any]:
        key = await self._ctx.secrets.read(self._s.api_key_secret_name)
        secret = await self._ctx.secrets.read(self._s.api_secret_secret_name)
        request = self._ctx.http.request(
            method,
            url,
            json=body,
            headers={"Accept": ACCEPT},
            auth=httpx.BasicAuth(key.reveal(), secret.reveal()),
        )
        response = await self._reach.answer(request)
        return json_answer(response, f"{self._what} at {self._s.api_url} ({method})", self._advice)

    def _advice(self, where: str, status: int, said: str) -> errors.ConsumerError:
        where = f"{where} answered {status}: {said}"
        if status in {401, 403}:
            return errors.ConsumerAuthError(
                f"{where}. Check the API key and secret in Key Vault secrets "
                f"{self._s.api_key_secret_name!r} and {self._s.api_secret_secret_name!r} (a key "
                "with access to this destination's group); nothing was changed."
            )
        if status == 404:  # noqa: PLR2004
            return errors.ConsumerError(
                f"{where}. Check destination_id (the destination's group id) and api_url; "
                "nothing was changed."
            )
        return errors.ConsumerError(f"{where}.")


PLUGIN = Plugin("fivetran-destination", FivetranSettings, FivetranUpdater)
