"""Webhook receiver emulator: an in-house consumer speaking pat-rotator's webhook protocol.

``POST /hooks/{receiver}`` with a Standard Webhooks signature (``webhook-id``,
``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">``, key ``whsec_`` + base64; several space-separated signatures
allowed). The timestamp must be within 5 minutes of the emulators' virtual clock. Events:

- ``pat.test``: try ``data.pat`` against the receiver's Databricks workspace (the emulator,
  ``GET /api/2.0/preview/scim/v2/Me``) without saving it → 200 ``{"ok": true}`` or 422
  ``{"ok": false, "reason"}``;
- ``pat.rotated``: save ``data.pat`` → 200 ``{"ok": true}``.

Every other answer is ``{"ok": false, "reason"}`` too: 400 for a malformed delivery, 401 for a
bad signature or a stale timestamp, 404 for an unknown receiver. A ``webhook-id`` seen before
(with a valid signature) gets the first answer again and does nothing more.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from emulators.dbprobe import probe_databricks
from emulators.web import json_response, service_app
from emulators.webhook_state import TOLERANCE_SECONDS, ReceivedEvent, Receiver, WebhookState, sign

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["WebhookState", "build_webhook_app", "sign", "webhook_error_body"]

EVENT_TYPES = ("pat.test", "pat.rotated")
_REASONS = {
    400: "bad request",
    401: "unauthorized",
    404: "no such receiver",
    405: "method not allowed",
    429: "too many requests",
    500: "internal error",
    503: "unavailable",
}


def webhook_error_body(status: int, path: str = "") -> dict[str, Any]:
    """Return the receiver's error body for ``status`` (used by injected faults)."""
    del path
    return {"ok": False, "reason": _REASONS.get(status, f"HTTP {status}")}


class _Refused(Exception):  # noqa: N818 - an answer
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _WebhookApp:
    """The delivery route bound to one `WebhookState`."""

    def __init__(self, state: WebhookState) -> None:
        self.state = state

    async def deliver(self, request: Request) -> Response:
        receiver = self.state.find(request.path_params["name"])
        if receiver is None:
            return json_response(404, webhook_error_body(404))
        body = await request.body()
        try:
            msg_id = self._verify(receiver, request, body)
        except _Refused as exc:
            return json_response(exc.status, {"ok": False, "reason": exc.reason})
        with self.state.lock:
            seen = receiver.answers.get(msg_id)
        if seen is not None:
            self._log(receiver, msg_id, "", seen, "", replayed=True)
            return json_response(*seen)
        try:
            kind, pat = _event(body)
        except _Refused as exc:
            return json_response(exc.status, {"ok": False, "reason": exc.reason})
        answer = await self._act(receiver, kind, pat)
        with self.state.lock:
            receiver.answers[msg_id] = answer
        self._log(receiver, msg_id, kind, answer, pat)
        return json_response(*answer)

    def _verify(self, receiver: Receiver, request: Request, body: bytes) -> str:
        msg_id = request.headers.get("webhook-id", "")
        stamp = request.headers.get("webhook-timestamp", "")
        signatures = request.headers.get("webhook-signature", "")
        if not msg_id or not stamp or not signatures:
            raise _Refused(400, "missing webhook-id, webhook-timestamp or webhook-signature")
        if not stamp.isdigit():
            raise _Refused(400, "webhook-timestamp must be integer Unix seconds")
        if abs(self.state.clock.now() - int(stamp)) > TOLERANCE_SECONDS:
            raise _Refused(401, "webhook-timestamp is outside the 5-minute tolerance")
        with self.state.lock:
            keys = list(receiver.secrets)
        expected = [sign(k, msg_id, int(stamp), body) for k in keys]
        for offered in signatures.split():
            if any(hmac.compare_digest(offered.encode(), e.encode()) for e in expected):
                return msg_id
        raise _Refused(401, "no webhook-signature matches")

    async def _act(self, receiver: Receiver, kind: str, pat: str) -> tuple[int, dict[str, Any]]:
        if kind == "pat.rotated":
            with self.state.lock:
                receiver.save(pat)
            return 200, {"ok": True}
        result = await probe_databricks(self.state.trust, receiver.host, receiver.port, pat)
        if result.ok:
            return 200, {"ok": True}
        return 422, {"ok": False, "reason": result.message}

    def _log(
        self,
        receiver: Receiver,
        msg_id: str,
        kind: str,
        answer: tuple[int, dict[str, Any]],
        pat: str,
        *,
        replayed: bool = False,
    ) -> None:
        status, body = answer
        event = ReceivedEvent(
            msg_id, kind, status, bool(body.get("ok")), str(body.get("reason", "")), pat, replayed
        )
        with self.state.lock:
            receiver.events.append(event)


def _event(body: bytes) -> tuple[str, str]:
    """Return ``(type, pat)`` of a delivery body, or raise 400."""
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _Refused(400, "the body is not JSON") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("data"), dict):
        raise _Refused(400, 'the body must be {"type", "timestamp", "data": {...}}')
    kind = parsed.get("type")
    if kind not in EVENT_TYPES:
        raise _Refused(400, f"unknown event type; expected one of {', '.join(EVENT_TYPES)}")
    pat = parsed["data"].get("pat")
    if not isinstance(pat, str) or not pat:
        raise _Refused(400, "data.pat must be a non-empty string")
    return str(kind), pat


def build_webhook_app(state: WebhookState) -> Starlette:
    """Build the webhook receiver ASGI app for ``state`` (without the fault/log middleware)."""
    app = _WebhookApp(state)
    return service_app([Route("/hooks/{name}", app.deliver, methods=["POST"])], webhook_error_body)
