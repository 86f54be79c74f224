"""A signed webhook: an in-house service that holds the target's PAT and speaks our protocol.

The protocol is pat-rotator's own, written in ``docs/webhook-receiver.md`` (and
``docs/reference/consumers.md``): ``POST <url>`` with a JSON body
``{"type", "timestamp", "data": {"target", "pat"}}`` signed as Standard Webhooks v1 prescribes
(``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">``; the key is the ``whsec_…`` secret kept in Key Vault), signed by the
``standardwebhooks`` library of the Standard Webhooks project.

- ``pat.test`` — the receiver tries the candidate PAT without saving it: 200 ``{"ok": true}``
  (:meth:`WebhookUpdater.test` returns True) or 422 ``{"ok": false, "reason"}``
  (``ConsumerRejectedTokenError``: nothing is pushed, the old PAT stays).
- ``pat.rotated`` — the receiver saves the PAT: its 200 ``{"ok": true}`` is the confirmation.

Preflight sends a ``pat.test`` with a made-up PAT, which a receiver must refuse with 422: that
proves the URL, the signing secret and that the receiver really tries what it is sent.
A delivery is retried with the same ``webhook-id`` (receivers answer a repeat as the first time).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import secrets
from functools import partial
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from rotation import errors
from rotation.backends import retrying
from rotation.backends.http import json_body
from rotation.fields import HttpsUrl, Model, SecretName
from rotation.secret import Secret
from rotation.updaters.base import Plugin
from rotation.updaters.http_calls import Reach, refusal

if TYPE_CHECKING:
    from rotation.updaters.base import UpdaterContext

__all__ = ["PLUGINS", "WebhookSettings", "WebhookUpdater"]

Event = Literal["pat.test", "pat.rotated"]
PROTOCOL = "docs/webhook-receiver.md"
_KEY_BYTES = (24, 64)
_MAX_REASON = 200


class WebhookSettings(Model):
    """A ``kind = "webhook"`` updater table."""

    url: HttpsUrl
    """Where the receiver listens (``https://``; a path is allowed)."""
    signing_secret_name: SecretName
    """Key Vault secret holding the receiver's ``whsec_…`` signing secret."""


def _fingerprint(pat: Secret) -> str:
    return hashlib.sha256(pat.reveal().encode()).hexdigest()


class WebhookUpdater:
    """Test, push and confirm a PAT with one webhook receiver."""

    def __init__(self, settings: WebhookSettings, context: UpdaterContext) -> None:
        self._s = settings
        self._ctx = context
        url = urlsplit(settings.url)
        self._label = f"{url.netloc}{url.path}"
        self._what = f"the webhook receiver at {settings.url}"
        self._reach = Reach(self._what)
        self._acknowledged: str | None = None
        """Fingerprint of the PAT whose ``pat.rotated`` the receiver answered ok here."""

    @property
    def name(self) -> str:
        """Return e.g. ``webhook:hooks.example.com/pat``."""
        return f"webhook:{self._label}"

    def __repr__(self) -> str:
        return f"WebhookUpdater({self.name!r})"

    async def preflight(self) -> None:
        """Send a ``pat.test`` with a made-up PAT: the receiver must answer that it fails."""
        junk = Secret(f"dapi{secrets.token_hex(16)}-made-up")
        try:
            await self._deliver("pat.test", junk)
        except errors.ConsumerRejectedTokenError:
            return
        msg = (
            f"{self._what} answered that a made-up PAT works: its pat.test does not try the PAT "
            f"it is sent (see {PROTOCOL}), so it cannot protect the rotation. Nothing was changed."
        )
        raise errors.ConsumerError(msg)

    async def test(self, pat: Secret) -> bool:
        """Have the receiver try *pat* without saving it; True, or ConsumerRejectedTokenError."""
        await self._deliver("pat.test", pat)
        return True

    async def push(self, pat: Secret) -> None:
        """Send ``pat.rotated``: the receiver saves *pat* and answers ok (that confirms it)."""
        await self._deliver("pat.rotated", pat)
        self._acknowledged = _fingerprint(pat)

    async def confirm(self, pat: Secret) -> None:
        """Hold the receiver's ok to ``pat.rotated``; without one here, ask again (idempotent)."""
        if self._acknowledged != _fingerprint(pat):
            await self.push(pat)

    async def _deliver(self, event: Event, pat: Secret) -> None:
        """Sign and POST one event, retried with the same ``webhook-id`` on transient failures."""
        now = self._ctx.clock()
        stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        data = {"target": self._ctx.target, "pat": pat.reveal()}
        payload = {"type": event, "timestamp": stamp, "data": data}
        body = json.dumps(payload, separators=(",", ":")).encode()
        msg_id = f"msg_{secrets.token_hex(16)}"
        await retrying(self._ctx.retry, partial(self._send, event, msg_id, body, pat))

    async def _signer(self) -> Any:  # noqa: ANN401 — standardwebhooks.Webhook, imported lazily
        from standardwebhooks.webhooks import Webhook  # noqa: PLC0415

        name = self._s.signing_secret_name
        value = (await self._ctx.secrets.read(name)).reveal()
        try:
            key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not value.startswith("whsec_") or not _KEY_BYTES[0] <= len(key) <= _KEY_BYTES[1]:
            msg = (
                f"Key Vault secret {name!r} does not hold a Standard Webhooks signing secret "
                "('whsec_' + base64 of 24-64 random bytes, the receiver's own). Store it there."
            )
            raise errors.ConsumerAuthError(msg)
        return Webhook(key)

    async def _send(self, event: Event, msg_id: str, body: bytes, pat: Secret) -> None:
        signer = await self._signer()
        moment = dt.datetime.fromtimestamp(int(self._ctx.clock()), dt.UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": signer.sign(msg_id, moment, body),
        }
        request = self._ctx.http.post(self._s.url, content=body, headers=headers)
        response = await self._reach.answer(request)
        answer = json_body(response)
        if response.status_code == 200 and answer.get("ok") is True:  # noqa: PLR2004
            return
        reason = _reason(answer, pat)
        raise refusal(response, f"{self._what} ({event})", reason, partial(self._advice, event))

    def _advice(self, event: Event, where: str, status: int, reason: str) -> errors.ConsumerError:
        if status == 422 and event == "pat.test":  # noqa: PLR2004
            return errors.ConsumerRejectedTokenError(
                f"{where} tried the new PAT without saving it and it failed: {reason}. Nothing "
                "was pushed; check the service principal's access to what the service uses."
            )
        if status == 401:  # noqa: PLR2004
            return errors.ConsumerAuthError(
                f"{where} refused the signature (401: {reason}). Check that Key Vault secret "
                f"{self._s.signing_secret_name!r} holds the receiver's signing secret and that "
                "both clocks are right (5 minutes' tolerance)."
            )
        if status == 200:  # noqa: PLR2004
            return errors.ConsumerError(
                f'{where} answered 200 without {{"ok": true}}: it does not speak the protocol '
                f"of {PROTOCOL}."
            )
        said = {400: "refused the delivery as malformed", 404: "has no receiver there"}
        return errors.ConsumerError(
            f"{where} {said.get(status, 'refused the delivery')} ({status}: {reason}); see "
            f"{PROTOCOL}."
        )


def _reason(answer: dict[str, Any], pat: Secret) -> str:
    """Return the receiver's reason on one line, short, with the PAT cut out if it quoted it."""
    text = " ".join(str(answer.get("reason") or "no reason given").split())
    return text.replace(pat.reveal(), "<the PAT>")[:_MAX_REASON]


PLUGINS = (Plugin("webhook", WebhookSettings, WebhookUpdater),)
"""The built-in webhook kind (the registry keys it by its ``kind``)."""
