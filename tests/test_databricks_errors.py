"""Each Databricks error rule, pinned on answers in the shapes Databricks documents.

The real ``Workspace`` methods talk to an ``httpx.MockTransport`` that answers with the bodies,
statuses and headers of the contract sheet (docs/reference/databricks-api.md), not with
the emulator's strings, so a change in the emulator cannot hide a wrong classification.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from rotation import errors
from rotation.backends import RetryPolicy, Workspace, is_transient_status
from rotation.backends.databricks_errors import RULES, Admin, read, rule_for, translate

URL = "https://adb-1234567890123456.7.azuredatabricks.net"
APP = "5e2a1c3b-0d4f-4a6e-9b8c-7d1e2f3a4b5c"
AUTH = httpx.Auth()  # sends nothing: the transport is a mock
POLICY = RetryPolicy(attempts=3, wait_initial=0.001, wait_max=0.002, wait_jitter=0.0)
SCIM = ["urn:ietf:params:scim:api:messages:2.0:Error"]
REQ_ID = "[ReqId: 6f0e2b1a-3c4d-4e5f-8a9b-0c1d2e3f4a5b]"
PAT = "dapi" + "0123456789abcdef" * 2
LOGIN = Admin("your own Entra login (--admin-login)")

CALLS: dict[str, Callable[[Workspace], Awaitable[Any]]] = {
    "create": lambda ws: ws.create_token(
        AUTH, lifetime_seconds=86_400, comment="rotation r1", principal=APP
    ),
    "obo": lambda ws: ws.create_token_on_behalf_of(
        AUTH, application_id=APP, lifetime_seconds=86_400, comment="rotation r1"
    ),
    "list": lambda ws: ws.list_tokens(AUTH, principal=APP),
    "list-all": lambda ws: ws.list_all_tokens(AUTH, principal=APP),
    "me": lambda ws: ws.me(AUTH, principal=APP),
    "delete": lambda ws: ws.delete_token(AUTH, "ab" * 32, principal=APP),
    "delete-admin": lambda ws: ws.delete_token_admin(AUTH, "ab" * 32, principal=APP),
    "conf-as-login": lambda ws: ws.workspace_conf(AUTH, ("enableTokensConfig",), principal=LOGIN),
    "acl-as-login": lambda ws: ws.token_users(AUTH, principal=LOGIN),
}
CREATES = frozenset({"create", "obo"})


@dataclass(frozen=True)
class Case:
    """One documented answer to one call, and what the rotator must make of it."""

    rule: str
    call: str
    status: int
    body: dict[str, Any] | bytes
    kind: str
    hints: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    transient: bool = False
    outcome_unknown: bool = False
    sent: int = 1

    @property
    def code(self) -> str | None:
        """The error code Databricks gave: ``error_code``, or a SCIM error's ``status``."""
        if isinstance(self.body, bytes):
            return None
        raw = self.body.get("error_code", self.body.get("status"))
        return None if raw is None else str(raw)

    def response(self) -> httpx.Response:
        if isinstance(self.body, bytes):
            return httpx.Response(self.status, content=self.body, headers=self.headers)
        return httpx.Response(self.status, json=self.body, headers=self.headers)


def _case(id_: str, *args: Any, **kwargs: Any) -> Any:
    return pytest.param(Case(*args, **kwargs), id=id_)


def _err(code: object, message: str) -> dict[str, Any]:
    return {"error_code": code, "message": message}


RETRIED = {"transient": True, "sent": POLICY.attempts}
PROXY_502 = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
)
JETTY_403 = (
    b"<html><head><title>Error 403 Invalid access token.</title></head><body><h2>HTTP ERROR 403"
    b"</h2><p>Problem accessing /api/2.0/token/list. Reason:<pre>    Invalid access token.</pre>"
)
NOT_AUTHORIZED = ("Import", "Workspace access", APP)
DISABLED = ("enableTokensConfig", "Admin Settings")
CAN_USE = ("CAN_USE", "permissions/authorization/tokens", APP)
QUOTA = ("600", "Revoke unused tokens")
LIFETIME = ("lifetime_days", "maxTokenLifetimeDays")
INVALID = ("invalid, expired or revoked",)

# One documented answer per line: the table the rules are pinned by (not reformatted).
# fmt: off
CASES = [
    # 429 REQUEST_LIMIT_EXCEEDED / RESOURCE_EXHAUSTED, integer Retry-After [C]
    _case("429-retry-after", "throttled", "list", 429, _err("REQUEST_LIMIT_EXCEEDED", "Too many requests."), "databricks", ("429 REQUEST_LIMIT_EXCEEDED", "transient"), {"Retry-After": "0"}, **RETRIED),
    _case("429-create-is-retried", "throttled", "create", 429, _err("RESOURCE_EXHAUSTED", "Rate limit exceeded."), "databricks", ("transient",), **RETRIED),
    _case("429-retry-after-above-cap", "throttled", "list", 429, _err("REQUEST_LIMIT_EXCEEDED", "Slow down."), "databricks", ("transient",), {"Retry-After": "3600"}, transient=True),
    # 5xx: transient, and a create may have happened (not retried, reconciled by comment)
    _case("503-create-unknown", "server-error", "create", 503, _err("TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable."), "databricks", ("503 TEMPORARILY_UNAVAILABLE",), transient=True, outcome_unknown=True),
    _case("500-list", "server-error", "list", 500, _err("INTERNAL_ERROR", "Internal error."), "databricks", ("500 INTERNAL_ERROR",), outcome_unknown=True, **RETRIED),
    _case("502-html-from-a-proxy", "server-error", "me", 502, PROXY_502, "databricks", ("502 Bad Gateway", "proxy"), outcome_unknown=True, **RETRIED),
    # 403 "Token is expiring within 30 seconds." [O]
    _case("entra-token-expiring", "bearer-token-expiring", "list", 403, _err(403, "Token is expiring within 30 seconds."), "databricks", ("30 seconds", "clock"), **RETRIED),
    # 403 + X-Databricks-Reason-Phrase, body with integer error_code; older: HTML [O]
    _case("invalid-token", "invalid-token", "me", 403, _err(403, "Invalid access token."), "invalid-token", INVALID, {"X-Databricks-Reason-Phrase": "Invalid access token."}),
    _case("invalid-token-html-with-header", "invalid-token", "list-all", 403, b"<html><body>Forbidden</body></html>", "invalid-token", INVALID, {"X-Databricks-Reason-Phrase": "Invalid access token."}),
    _case("invalid-token-html-pre", "invalid-token", "list", 403, JETTY_403, "invalid-token", INVALID),
    # 403 "User not authorized." for an Entra SP not added to the workspace [O]
    _case("sp-not-in-workspace", "principal-not-in-workspace", "create", 403, _err(403, "User not authorized."), "principal-not-in-workspace", NOT_AUTHORIZED),
    _case("sp-not-in-workspace-scim", "principal-not-in-workspace", "me", 403, {"schemas": SCIM, "detail": "User not authorized.", "status": "403"}, "principal-not-in-workspace", NOT_AUTHORIZED),
    # OBO refused on Azure [O: databricks/cli#596]
    _case("obo-not-enabled", "on-behalf-of-disabled", "obo", 400, _err("INVALID_PARAMETER_VALUE", "On-behalf-of token creation for service principals is not enabled for this workspace"), "on-behalf-of-disabled", ("databricks-oauth", "not enabled for this workspace")),
    # token/list → 404 "Tokens are disabled." [O]; the seed says creating answers 403
    _case("tokens-disabled-list", "tokens-disabled", "list", 404, _err(404, "Tokens are disabled."), "tokens-disabled", DISABLED),
    _case("tokens-disabled-create", "tokens-disabled", "create", 403, _err("PERMISSION_DENIED", "Personal access tokens are disabled for this workspace."), "tokens-disabled", DISABLED),
    # "User does not have permission to use tokens." [O], string or integer code [C]
    _case("can-use-string-code", "missing-can-use", "create", 403, _err("PERMISSION_DENIED", "User does not have permission to use tokens."), "missing-can-use", CAN_USE),
    _case("can-use-integer-code", "missing-can-use", "list", 403, _err(403, "User does not have permission to use tokens."), "missing-can-use", CAN_USE),
    # QUOTA_EXCEEDED [C], 600 live tokens per principal
    _case("quota", "token-quota", "create", 400, _err("QUOTA_EXCEEDED", "Cannot create more than 600 tokens."), "token-quota", QUOTA),
    _case("quota-obo", "token-quota", "obo", 400, _err("QUOTA_EXCEEDED", "Quota exceeded."), "token-quota", QUOTA),
    _case("quota-integer-code", "token-quota-message", "create", 400, _err(400, "Token quota exceeded for this user."), "token-quota", QUOTA),
    # lifetime above maxTokenLifetimeDays: an INVALID_PARAMETER_VALUE on create naming it [I]
    _case("lifetime", "lifetime-too-long", "create", 400, _err("INVALID_PARAMETER_VALUE", "Requested token lifetime exceeds the maximum allowed by the workspace."), "lifetime-too-long", LIFETIME),
    _case("lifetime-obo", "lifetime-too-long", "obo", 400, _err("INVALID_PARAMETER_VALUE", "lifetime_seconds must be at most 7776000."), "lifetime-too-long", LIFETIME),
    # 401 "Credential was not sent or was of an unsupported type for this API." [O]
    _case("credential-not-sent", "credential-not-accepted", "list", 401, _err(401, f"Credential was not sent or was of an unsupported type for this API. {REQ_ID}"), "invalid-token", ("Credential was not sent", "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default")),
    # the seed's troubleshooting names a 403 (not authorized) when creating a PAT
    _case("create-403-empty-body", "create-forbidden", "create", 403, b"", "databricks", ("403", "an empty body", "CAN USE", "Personal access tokens")),
    _case("obo-403-not-admin", "create-forbidden", "obo", 403, _err("PERMISSION_DENIED", "Only Admins can access token management APIs."), "databricks", ("Only Admins", "workspace admin")),
    # admin calls name the admin (the person's login), with an admin's fixes
    _case("login-not-an-admin", "not-an-admin", "conf-as-login", 403, _err("PERMISSION_DENIED", "Only Admins can access workspace configuration."), "databricks", ("Your own Entra login (--admin-login) is not a workspace admin", "az login", "admin_token_secret_name")),
    _case("login-not-in-workspace", "principal-not-in-workspace", "acl-as-login", 403, _err(403, "User not authorized."), "principal-not-in-workspace", ("Your own Entra login (--admin-login) is not a user of", "as your own Entra login", "az login")),
    # anything else: generic, quoting Databricks
    _case("unknown-string-code", "unknown", "list", 400, _err("INVALID_STATE", "The workspace is being migrated."), "databricks", ("400 INVALID_STATE", "being migrated", "run again")),
    _case("unknown-integer-code", "unknown", "list-all", 409, _err(409, "Conflict."), "databricks", ("409", "Conflict.", "run again")),
    _case("unknown-scim", "unknown", "me", 404, {"schemas": SCIM, "detail": "User not found.", "status": "404"}, "databricks", ("404", "User not found.")),
    _case("unknown-empty-body", "unknown", "delete", 400, b"", "databricks", ("400", "an empty body", "Bad Request")),
    _case("unknown-html-pre", "unknown", "list", 400, b"<title>Error 400 Bad Request</title><pre>Missing parameter.</pre>", "databricks", ("'Missing parameter.'", "proxy")),
    # rows bound to creates, or to a status, leave other answers alone
    _case("lifetime-word-on-list", "unknown", "list", 400, _err("INVALID_PARAMETER_VALUE", "Invalid token lifetime filter."), "databricks", ("400 INVALID_PARAMETER_VALUE", "lifetime filter")),
    _case("quota-word-on-a-403", "unknown", "list", 403, {"message": "Workspace quota exceeded for this feature."}, "databricks", ("403", "Workspace quota")),
]
# fmt: on


async def _fail(call: str, answer: httpx.Response) -> tuple[errors.DatabricksError, int]:
    """Run *call* against a workspace that always gives *answer*; return its error and tries."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(answer.status_code, content=answer.content, headers=answer.headers)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(errors.DatabricksError) as caught:
            await CALLS[call](Workspace(http, URL, POLICY))
    return caught.value, len(sent)


@pytest.mark.parametrize("case", CASES)
async def test_a_documented_answer_becomes_its_error_with_what_to_do(case: Case) -> None:
    exc, sent = await _fail(case.call, case.response())
    assert exc.kind == case.kind, exc
    assert rule_for(read(case.response()), creating=case.call in CREATES).name == case.rule
    assert (exc.transient, exc.outcome_unknown) == (case.transient, case.outcome_unknown)
    assert (exc.status, exc.error_code) == (case.status, case.code)
    for hint in case.hints:
        assert hint in str(exc)
    assert sent == case.sent


async def test_an_admin_call_never_names_a_service_principal() -> None:
    for call in ("conf-as-login", "acl-as-login"):
        for body in (_err(403, "User not authorized."), _err(403, "Invalid access token.")):
            exc, _ = await _fail(call, httpx.Response(403, json=body))
            assert "Service principal" not in str(exc)
            assert "principal your own" not in str(exc)


def test_every_rule_is_pinned_by_a_case() -> None:
    assert {p.values[0].rule for p in CASES} == {rule.name for rule in RULES}


@pytest.mark.parametrize(
    ("call", "status", "message", "code", "kind"),
    [
        (
            "create",
            403,
            "User does not have permission to use tokens.",
            "PERMISSION_DENIED",
            "missing-can-use",
        ),
        ("create", 403, "User not authorized.", 403, "principal-not-in-workspace"),
        ("list", 404, "Tokens are disabled.", 404, "tokens-disabled"),
        (
            "obo",
            400,
            "On-behalf-of token creation for service principals is not enabled for this workspace",
            "INVALID_PARAMETER_VALUE",
            "on-behalf-of-disabled",
        ),
        (
            "create",
            400,
            "Requested token lifetime exceeds the maximum allowed by the workspace.",
            "INVALID_PARAMETER_VALUE",
            "lifetime-too-long",
        ),
        ("create", 400, "Token quota exceeded for this user.", 400, "token-quota"),
        ("me", 403, "Invalid access token.", 403, "invalid-token"),
    ],
)
async def test_a_message_pattern_does_not_match_another_error_code(
    call: str, status: int, message: str, code: object, kind: str
) -> None:
    own, _ = await _fail(call, httpx.Response(status, json=_err(code, message)))
    assert own.kind == kind  # with the rule's own code, the pattern decides
    for other in ("MALFORMED_REQUEST", "RESOURCE_DOES_NOT_EXIST"):
        exc, _ = await _fail(call, httpx.Response(status, json=_err(other, message)))
        assert exc.kind != kind
        assert exc.error_code == other
        assert message in str(exc)


@pytest.mark.parametrize(
    ("code", "answered"),
    [("SOMETHING_NEW", "answered 418 SOMETHING_NEW in"), (418, "answered 418 in")],
)
async def test_an_unknown_4xx_is_generic_but_quotes_databricks_masked(
    code: object, answered: str
) -> None:
    body = _err(code, f"Header Authorization: Bearer {PAT} was odd; token {PAT} too.")
    exc, sent = await _fail("list", httpx.Response(418, json=body))
    assert type(exc) is errors.DatabricksError
    assert (exc.status, exc.error_code, exc.transient, sent) == (418, str(code), False, 1)
    text = str(exc)
    assert answered in text
    assert "was odd; token [secret] too." in text
    assert PAT not in text
    assert "act on Databricks' message" in text
    assert APP in text
    assert URL in text


async def test_a_scim_error_gives_its_status_as_code_and_its_type_with_the_detail() -> None:
    body = {"schemas": SCIM, "scimType": "invalidValue", "detail": "Bad filter.", "status": "400"}
    exc, _ = await _fail("me", httpx.Response(400, json=body))
    assert exc.error_code == "400"
    assert "Databricks answered 400 in" in str(exc)
    assert "invalidValue Bad filter." in str(exc)


def test_transient_exactly_for_the_statuses_that_mean_try_again() -> None:
    wrong = []
    for status in range(400, 600):
        answer = httpx.Response(status, json=_err("SOME_CODE", "Something."))
        exc = translate(answer, url=URL, operation="token/list", principal=APP)
        if (exc.transient, exc.outcome_unknown) != (
            is_transient_status(status),
            is_transient_status(status) and status >= 500,
        ):
            wrong.append((status, exc.transient, exc.outcome_unknown))
    assert wrong == []


@pytest.mark.parametrize("call", ["delete", "delete-admin"])
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, _err("RESOURCE_DOES_NOT_EXIST", "Token with id abab does not exist.")),
        (404, _err(404, "Not found.")),
        (400, _err("RESOURCE_DOES_NOT_EXIST", "Token with id abab does not exist.")),
    ],
)
async def test_deleting_a_token_that_is_gone_is_not_an_error(
    call: str, status: int, body: dict[str, Any]
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(status, json=body))
    ) as http:
        assert await CALLS[call](Workspace(http, URL, POLICY)) is False
