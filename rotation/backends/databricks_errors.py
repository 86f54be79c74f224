"""Databricks error answers translated by a table: one row per documented failure.

A :class:`Rule` names the statuses, ``error_code`` values and message pattern of one failure, the
error class it becomes and the message that says what to do. The first matching rule wins; the
last one matches anything and quotes Databricks' own status, code and message. Sources in the
comments are the tags of docs/reference/databricks-api.md: [C] confirmed, [O] observed,
[I] inferred.

Bodies come in several shapes, all read into one :class:`Answer`: ``{"error_code", "message"}``
with a string or (legacy endpoints) an integer code, API 1.2's ``{"error"}``, SCIM's
``{"schemas": [...Error], "detail", "status"}``, the ``X-Databricks-Reason-Phrase`` header,
and HTML or empty bodies from old endpoints or a proxy in between.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from rotation import errors
from rotation.backends.http import retry_after

if TYPE_CHECKING:
    import httpx

__all__ = ["RULES", "Admin", "Answer", "Rule", "read", "rule_for", "translate"]

_SCIM_ERROR: Final = "urn:ietf:params:scim:api:messages:2.0:Error"
_REASON_HEADER: Final = "x-databricks-reason-phrase"
_HTML_MESSAGES: Final = tuple(  # where an HTML error page states it, as the SDKs read it
    re.compile(rf"<{tag}>(.*?)</{tag}>", re.IGNORECASE | re.DOTALL) for tag in ("pre", "title")
)
_EXCERPT: Final = 200


class Admin(str):
    """The caller of an admin call, named for people: a workspace admin, not a service principal.

    Pass it as ``principal`` (e.g. ``Admin("your own Entra login (--admin-login)")``): messages
    then say who it is instead of "Service principal …", and give an admin's fixes.
    """

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Answer:
    """What a Databricks error answer says, read once from the response."""

    status: int
    code: str | None
    """``error_code`` as text (``403`` → ``"403"``; a SCIM body's ``status``); None when absent."""
    message: str
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class Rule:
    """One documented failure: what its answer looks like and what to tell the operator."""

    name: str
    error: type[errors.DatabricksError]
    advice: str
    """Message template over ``{where}``, ``{who}`` (e.g. "Service principal <id>"),
    ``{principal}``, ``{answered}`` and ``{message}``."""
    status: tuple[int, ...] = ()
    """HTTP statuses it matches; empty: any."""
    codes: tuple[str | None, ...] = ()
    """``error_code`` values it matches (None: no code given); empty: any."""
    text: str = ""
    """Regular expression searched in the message, ignoring case; empty: any message."""
    creates_only: bool = False
    transient: bool = False
    outcome_unknown: bool = False
    admin_advice: str = ""
    """The advice when the caller is an `Admin` (empty: the same advice)."""

    def matches(self, answer: Answer, *, creating: bool) -> bool:
        """Return whether *answer* (to a token create when *creating*) is this failure."""
        return (
            (not self.status or answer.status in self.status)
            and (not self.codes or answer.code in self.codes)
            and (creating or not self.creates_only)
            and (not self.text or re.search(self.text, answer.message, re.IGNORECASE) is not None)
        )


# Legacy bodies carry the HTTP status as an integer code [C]; PERMISSION_DENIED is 403's name.
_DENIED: Final = ("PERMISSION_DENIED", "403", None)
_INVALID: Final = ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "400", None)
_RETRIED: Final = (
    "Databricks answered {answered} in {where}: {message}. "
    "This is transient; the call is retried and the next run resumes."
)
_QUOTA: Final = (
    "{who} holds the maximum of 600 live tokens in {where}. Revoke "
    "unused tokens (token-management API or `databricks tokens delete`); tokens this tool "
    "minted and lost are swept automatically."
)

RULES: Final[tuple[Rule, ...]] = (
    # 429 REQUEST_LIMIT_EXCEEDED / RESOURCE_EXHAUSTED: retry, honour Retry-After [C: PY, GO];
    # 408 and 425 likewise mean the request was not carried out.
    Rule("throttled", errors.DatabricksError, _RETRIED, status=(408, 425, 429), transient=True),
    # 5xx: retried by both SDKs (503) [C], but the call may have happened: creates reconcile.
    Rule(
        "server-error",
        errors.DatabricksError,
        _RETRIED,
        status=(500, 502, 503, 504),
        transient=True,
        outcome_unknown=True,
    ),
    # 403 "Token is expiring within 30 seconds." for an Entra token [O]; GO refreshes 40 s early.
    Rule(
        "bearer-token-expiring",
        errors.DatabricksError,
        "Databricks refused a bearer token that expires within 30 seconds in {where}. Tokens are "
        "refreshed 40 s before expiry, so check the host's clock; the call is retried and the "
        "next run resumes.",
        status=(403,),
        codes=_DENIED,
        text=r"expiring within",
        transient=True,
    ),
    # 403, X-Databricks-Reason-Phrase / body "Invalid access token." (older: HTML) [O]
    Rule(
        "invalid-token",
        errors.InvalidTokenError,
        "Databricks rejected the credential as invalid, expired or revoked in {where}. A PAT "
        "unused for 90 days is revoked automatically; an Entra or OAuth token must be issued "
        "for this workspace's tenant.",
        status=(401, 403),
        codes=(*_DENIED, "UNAUTHENTICATED", "401"),
        text=r"invalid access token",
    ),
    # 403 "User not authorized." for an Entra SP that was never added to the workspace [O]
    Rule(
        "principal-not-in-workspace",
        errors.PrincipalNotInWorkspaceError,
        "{who} is not a user of {where}. Add it: Settings → Identity and "
        "access → Service principals → Add → Import (application id), and enable Workspace "
        "access.",
        status=(403,),
        codes=_DENIED,
        text=r"user not authorized",
        admin_advice="{who} is not a user of {where}. Sign in (az login) as a workspace admin "
        "of this workspace, or name a workspace admin's PAT in Key Vault with "
        "admin_token_secret_name instead of --admin-login.",
    ),
    # "On-behalf-of token creation for service principals is not enabled for this workspace"
    # [O: databricks/cli#596]; status and code undocumented; OBO is AWS/GCP only [C: docs, TF].
    Rule(
        "on-behalf-of-disabled",
        errors.OnBehalfOfDisabledError,
        "The workspace refuses on-behalf-of token creation in {where}: {message}. On Azure, use "
        "principal kind 'databricks-oauth' (an OAuth secret of the service principal, then "
        "token/create as the principal) instead of 'databricks-obo'.",
        codes=(*_INVALID, *_DENIED, "FEATURE_DISABLED", "NOT_IMPLEMENTED"),
        text=r"on-behalf-of.*(not enabled|disabled|not supported)",
    ),
    # token/list → 404 {"error_code": 404, "message": "Tokens are disabled."} [O]; on token/create
    # undocumented (the seed's troubleshooting: a 403).
    Rule(
        "tokens-disabled",
        errors.TokensDisabledError,
        "Personal access tokens are disabled in {where}. A workspace admin must enable them "
        "(Admin Settings → Advanced → Personal Access Tokens, or PATCH /api/2.0/workspace-conf "
        'with {{"enableTokensConfig": "true"}}).',
        status=(403, 404),
        codes=(*_DENIED, "404", "FEATURE_DISABLED"),
        text=r"token.*disabled|disabled.*token",
    ),
    # "User does not have permission to use tokens." [O]; 403 PERMISSION_DENIED [I]
    Rule(
        "missing-can-use",
        errors.MissingCanUseError,
        "{who} lacks CAN_USE on tokens in {where}. Grant it in Admin "
        "Settings → Access control → Personal access tokens → Permission settings, or PATCH "
        "/api/2.0/permissions/authorization/tokens with "
        '{{"service_principal_name": "{principal}", "permission_level": "CAN_USE"}}.',
        codes=_DENIED,
        text=r"permission to use tokens",
    ),
    # token/create: QUOTA_EXCEEDED at 600 live tokens per principal [C]
    Rule("token-quota", errors.TokenQuotaError, _QUOTA, codes=("QUOTA_EXCEEDED",)),
    # the same refusal from a body with only a status for its code [I]
    Rule(
        "token-quota-message",
        errors.TokenQuotaError,
        _QUOTA,
        status=(400,),
        codes=_INVALID,
        text=r"\bquota\b|more than 600 tokens",
    ),
    # lifetime above maxTokenLifetimeDays: answer undocumented; a 400 on create that names the
    # lifetime ("Invalid timeout: ..." is Databricks' word for it [O]) is the candidate [I].
    Rule(
        "lifetime-too-long",
        errors.LifetimeTooLongError,
        "Databricks refused the requested token lifetime in {where}: {message}. It is likely "
        "above the workspace maximum: lower lifetime_days for this target (keeping it above "
        "rotate_before_days plus the grace period) or ask an admin to raise "
        "maxTokenLifetimeDays.",
        status=(400,),
        codes=_INVALID,
        text=r"lifetime|timeout",
        creates_only=True,
    ),
    # 401 "Credential was not sent or was of an unsupported type for this API." [O]
    Rule(
        "credential-not-accepted",
        errors.InvalidTokenError,
        "Databricks did not accept the credential in {where}: {message}. Check that the "
        "principal's token is a bearer token for Azure Databricks (Entra scope "
        "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default) or a PAT of this workspace.",
        status=(401,),
    ),
    # seed, troubleshooting: "403 / not authorized when creating PAT"
    Rule(
        "create-forbidden",
        errors.DatabricksError,
        "Databricks answered {answered} to token creation in {where}: {message}. PATs may be "
        "disabled for the workspace or the principal lacks CAN USE: check Admin Settings → "
        "Access control → Personal access tokens (on-behalf-of needs a workspace admin's PAT).",
        status=(403,),
        creates_only=True,
    ),
    # an admin route refused to a non-admin: "Only Admins can access …" [I: the emulator's words]
    Rule(
        "not-an-admin",
        errors.DatabricksError,
        "{who} is not a workspace admin in {where}: {message}. Sign in (az login) as a "
        "workspace admin for --admin-login, or store a workspace admin's PAT in Key Vault and "
        "name it in admin_token_secret_name.",
        status=(403,),
        codes=_DENIED,
        text=r"only admins",
    ),
    # anything else
    Rule(
        "unknown",
        errors.DatabricksError,
        "Databricks answered {answered} in {where}: {message}. This failure has no known fix "
        "here: act on Databricks' message (workspace settings, the principal's entitlements "
        "and permissions), then run again.",
    ),
)


def translate(
    response: httpx.Response, *, url: str, operation: str, principal: str
) -> errors.DatabricksError:
    """Return the error for Databricks' failed *response* to *operation*, saying what to do."""
    answer = read(response)
    rule = rule_for(answer, creating=operation.endswith("create"))
    same = answer.code in (None, str(answer.status))  # legacy and SCIM codes repeat the status
    answered = str(answer.status) if same else f"{answer.status} {answer.code}"
    admin = isinstance(principal, Admin)
    who = principal[:1].upper() + principal[1:] if admin else f"Service principal {principal}"
    text = (rule.admin_advice if admin and rule.admin_advice else rule.advice).format(
        where=f"workspace {url} ({operation}, {'as' if admin else 'principal'} {principal})",
        who=who,
        principal=principal,
        answered=answered,
        message=answer.message,
    )
    return rule.error(
        text,
        status=answer.status,
        error_code=answer.code,
        transient=rule.transient,
        retry_after=answer.retry_after if rule.transient else None,
        outcome_unknown=rule.outcome_unknown,
    )


def rule_for(answer: Answer, *, creating: bool) -> Rule:
    """Return the first rule of :data:`RULES` that *answer* matches (the last matches all)."""
    return next(rule for rule in RULES if rule.matches(answer, creating=creating))


def read(response: httpx.Response) -> Answer:
    """Read status, error code and message from any shape of Databricks error answer."""
    body = _json_object(response)
    return Answer(
        status=response.status_code,
        code=_code(body),
        message=_said(body) or response.headers.get(_REASON_HEADER) or _describe(response, body),
        retry_after=retry_after(response),
    )


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _code(body: dict[str, Any] | None) -> str | None:
    """Return ``error_code`` as text, or a SCIM error's ``status`` (both may be integers)."""
    if body is None:
        return None
    raw, schemas = body.get("error_code"), body.get("schemas")
    if raw is None and isinstance(schemas, list) and _SCIM_ERROR in schemas:
        raw = body.get("status")
    return None if raw is None or raw == "" else str(raw)


def _said(body: dict[str, Any] | None) -> str:
    """Return the body's own message: ``message``, API 1.2's ``error`` or SCIM's ``detail``."""
    if body is None:
        return ""
    for key in ("message", "error", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value.strip() and value != "null":
            scim_type = body.get("scimType") if key == "detail" else None
            return f"{scim_type} {value}" if isinstance(scim_type, str) and scim_type else value
    return ""


def _describe(response: httpx.Response, body: dict[str, Any] | None) -> str:
    """Describe an answer that carries no message (empty, HTML from Databricks or a proxy)."""
    if body is not None:
        return "no message"
    text = response.text.strip()
    if not text:
        return f"an empty body ({response.reason_phrase or 'no reason phrase'})"
    found = next((m.group(1) for p in _HTML_MESSAGES if (m := p.search(text)) and m.group(1)), text)
    excerpt = " ".join(found.split())
    return (
        f"{excerpt[:_EXCERPT]!r}, not a Databricks JSON answer (a proxy or firewall may have "
        "answered, or the workspace URL is wrong)"
    )
