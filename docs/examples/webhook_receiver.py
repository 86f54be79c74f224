# ruff: noqa: INP001 — a file to copy, not a package of this project
"""A minimal receiver of pat-rotator's webhook protocol (docs/webhook-receiver.md).

Starlette for HTTP, httpx to try a PAT on the workspace, and ``standardwebhooks`` (the Standard
Webhooks project's library) to check signatures. Put your own storage in :class:`PatStore`.

Run it behind HTTPS, e.g.::

    export WEBHOOK_SECRET=whsec_... DATABRICKS_HOST=https://adb-123.4.azuredatabricks.net
    python webhook_receiver.py  # then put TLS in front (a reverse proxy, or uvicorn's ssl_*)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from starlette.requests import Request

EVENTS = ("pat.test", "pat.rotated")


class PatStore:
    """Where the service keeps the PAT it uses (replace with your own: a file, a vault...)."""

    def __init__(self, pat: str = "") -> None:
        self.pat = pat

    def save(self, pat: str) -> None:
        """Use *pat* from now on."""
        self.pat = pat


def _answer(status: int, reason: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": True} if reason is None else {"ok": False, "reason": reason}
    return JSONResponse(body, status_code=status)


def _verified(webhook: Webhook, body: bytes, headers: dict[str, str]) -> Any:  # noqa: ANN401
    """Return the event of a delivery signed with our secret, else the answer to give."""
    stamp = headers.get("webhook-timestamp", "")
    if not headers.get("webhook-id") or not stamp.isdigit() or not headers.get("webhook-signature"):
        return _answer(400, "missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        return webhook.verify(body, headers)  # the signature and the 5-minute tolerance
    except WebhookVerificationError as exc:
        return _answer(401, str(exc))
    except ValueError:
        return _answer(400, "the body is not JSON")


def _pat_of(event: object) -> str | None:
    """Return the PAT of a well-formed event, else None."""
    if not isinstance(event, dict) or event.get("type") not in EVENTS:
        return None
    data = event.get("data")
    pat = data.get("pat") if isinstance(data, dict) else None
    return pat if isinstance(pat, str) and pat else None


def build_app(
    secret: str, workspace_url: str, store: PatStore, http: httpx.AsyncClient | None = None
) -> Starlette:
    """Return the receiver: ``POST /`` takes ``pat.test`` and ``pat.rotated`` events."""
    webhook = Webhook(secret)
    client = http or httpx.AsyncClient(timeout=10)
    answered: dict[str, JSONResponse] = {}  # webhook-id -> first answer: a retry changes nothing

    async def try_pat(pat: str) -> str | None:
        """Return None if *pat* works on the workspace, else why not (never the PAT itself)."""
        me = f"{workspace_url.rstrip('/')}/api/2.0/preview/scim/v2/Me"
        try:
            response = await client.get(me, headers={"Authorization": f"Bearer {pat}"})
        except httpx.HTTPError as exc:
            return f"could not reach the workspace ({type(exc).__name__})"
        if response.status_code != httpx.codes.OK:
            return f"the workspace answered {response.status_code}"
        return None

    async def hook(request: Request) -> JSONResponse:
        headers = dict(request.headers)
        event = _verified(webhook, await request.body(), headers)
        if isinstance(event, JSONResponse):
            return event
        msg_id = headers["webhook-id"]
        if msg_id in answered:
            return answered[msg_id]
        pat = _pat_of(event)
        if pat is None:
            return _answer(400, 'the body must be {"type", "timestamp", "data": {"pat"}}')
        if event["type"] == "pat.test":
            problem = await try_pat(pat)
            answer = _answer(200) if problem is None else _answer(422, problem)
        else:
            store.save(pat)
            answer = _answer(200)
        answered[msg_id] = answer
        return answer

    return Starlette(routes=[Route("/", hook, methods=["POST"])])


if __name__ == "__main__":
    import uvicorn

    app = build_app(os.environ["WEBHOOK_SECRET"], os.environ["DATABRICKS_HOST"], PatStore())
    uvicorn.run(app, host="127.0.0.1", port=8000)
