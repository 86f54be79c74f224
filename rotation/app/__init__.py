"""The app: the composition of real clients, the many-target service, the Function App's triggers.

:func:`open_app` builds every client from the app settings; :func:`rotate` and :func:`status` run
or list many targets from one Key Vault listing; the trigger handlers (timer, queue, HTTP, Key
Vault events) are what ``function_app.py`` adapts; :func:`diagnose` is ``doctor``'s checks.
"""

from __future__ import annotations

from rotation.app.clients import App, open_app, open_runtime
from rotation.app.doctor import Check, admin_auth, diagnose
from rotation.app.events import (
    ACTIONABLE,
    EXPIRED,
    NEAR_EXPIRY,
    KeyVaultEvent,
    MalformedEventError,
    parse_event,
)
from rotation.app.grant import WorkspaceAdmin, default_login, grant_can_use, login_auth
from rotation.app.http_api import BadRequestError, RotateOptions, parse_rotate_request
from rotation.app.service import StatusRow, needing_work, rotate, select, status
from rotation.app.storage import Storage, open_storage, storage_failure
from rotation.app.telemetry import RUN_EVENT, TIMER_EVENT, Field, emit_runs, emit_timer
from rotation.app.transport import azure_transport, http_client, trusting
from rotation.app.triggers import (
    MAX_DEQUEUE,
    guarded,
    http_doctor,
    http_rotate,
    http_status,
    key_vault_event,
    queued_rotation,
    require_storage,
    timer_tick,
)

__all__ = [
    "ACTIONABLE",
    "EXPIRED",
    "MAX_DEQUEUE",
    "NEAR_EXPIRY",
    "RUN_EVENT",
    "TIMER_EVENT",
    "App",
    "BadRequestError",
    "Check",
    "Field",
    "KeyVaultEvent",
    "MalformedEventError",
    "RotateOptions",
    "StatusRow",
    "Storage",
    "WorkspaceAdmin",
    "admin_auth",
    "azure_transport",
    "default_login",
    "diagnose",
    "emit_runs",
    "emit_timer",
    "grant_can_use",
    "guarded",
    "http_client",
    "http_doctor",
    "http_rotate",
    "http_status",
    "key_vault_event",
    "login_auth",
    "needing_work",
    "open_app",
    "open_runtime",
    "open_storage",
    "parse_event",
    "parse_rotate_request",
    "queued_rotation",
    "require_storage",
    "rotate",
    "select",
    "status",
    "storage_failure",
    "timer_tick",
    "trusting",
]
