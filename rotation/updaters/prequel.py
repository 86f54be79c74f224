"""Prequel updaters: a Databricks source, destination or import source whose PAT Prequel holds.

Defaults follow ``docs/reference/prequel-api.md``. Each kind reads its object (preflight), tests
changed fields without saving them (test) and with no changes (confirm), and saves only the token
fields (push), on the routes of :mod:`rotation.updaters.prequel_routes` (an inferred route that
answers 404 gives way to the documented one).

The body is ``{"<source|destination>": <only the changed fields>}`` [C]; the PAT sits at
``databricks.access_token_auth.access_token`` beside ``auth_method: "access_token_auth"``, the
layout of Prequel's Databricks connection [C] — for import sources that layout is inferred [I].
Routes and the field path can be overridden per updater, since some are inferred. A test whose
``data`` reports failure is a failure even when the envelope says ``success``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from rotation import errors
from rotation.backends import retrying
from rotation.fields import api_path, https_url
from rotation.secret import Secret
from rotation.updaters.http_calls import Reach, json_answer
from rotation.updaters.prequel_routes import (
    CONFIGURED,
    DESTINATION_ROUTES,
    DESTINATION_TESTS,
    IMPORT_ROUTES,
    IMPORT_TESTS,
    SOURCE_ROUTES,
    SOURCE_TESTS,
    NotFoundError,
    Purpose,
    Route,
    Router,
    configured,
)

if TYPE_CHECKING:
    from rotation.updaters.base import Updater, UpdaterContext

__all__ = [
    "PLUGINS",
    "PrequelDestinationFactory",
    "PrequelImportSourceFactory",
    "PrequelSettings",
    "PrequelSourceFactory",
    "PrequelUpdater",
]

API_VERSION = "2023-12-01"
DEFAULT_TOKEN_FIELD = "databricks.access_token_auth.access_token"  # noqa: S105 # nosec B105


def _test_path(value: object) -> object:
    """Return *value*: "" (no test route) as it is; other strings must be routes."""
    return api_path(value) if isinstance(value, str) and value else value


class PrequelSettings(BaseModel):
    """A ``[[targets.updaters]]`` table of a ``prequel-*`` kind (the id under its own name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: Annotated[str, AfterValidator(https_url)] = "https://api.prequel.co"
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    api_key_secret_name: str = Field(pattern=r"^[0-9a-zA-Z-]{1,127}$")
    api_version: str = API_VERSION
    update_path: Annotated[str, AfterValidator(api_path)] | None = None
    test_path: Annotated[str | None, BeforeValidator(_test_path)] = None
    """The test route; "" when the consumer cannot test unsaved values (no test)."""
    test_before_push: bool = True
    token_field: str = DEFAULT_TOKEN_FIELD
    auth_method_field: str | None = "databricks.auth_method"
    auth_method: str = "access_token_auth"


class _SourceSettings(PrequelSettings):
    """``prequel-source`` and ``prequel-import-source``: the id is ``source_id``."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$", alias="source_id")


class _DestinationSettings(PrequelSettings):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$", alias="destination_id")


@dataclass(frozen=True, slots=True)
class _Plugin:
    """One ``prequel-*`` kind: its settings, where its object lives and how it is tested."""

    kind: str
    label: str  # names the object in messages
    body_key: Literal["source", "destination"]
    settings_model: type[PrequelSettings]
    object_routes: tuple[Route, ...]
    """Where the object is read and updated, preferred first (a 404 moves to the next)."""
    test_routes: tuple[Route, ...]

    def build(self, settings: BaseModel, context: UpdaterContext) -> Updater:
        if not isinstance(settings, PrequelSettings):
            msg = f"{self.kind} needs PrequelSettings, got {type(settings).__name__}"
            raise TypeError(msg)
        return PrequelUpdater(self, settings, context)


PrequelSourceFactory = _Plugin(
    kind="prequel-source",
    label="source",
    body_key="source",
    settings_model=_SourceSettings,
    object_routes=SOURCE_ROUTES,
    test_routes=SOURCE_TESTS,
)
PrequelDestinationFactory = _Plugin(
    kind="prequel-destination",
    label="destination",
    body_key="destination",
    settings_model=_DestinationSettings,
    object_routes=DESTINATION_ROUTES,
    test_routes=DESTINATION_TESTS,
)
PrequelImportSourceFactory = _Plugin(
    kind="prequel-import-source",
    label="import source",
    body_key="source",
    settings_model=_SourceSettings,
    object_routes=IMPORT_ROUTES,
    test_routes=IMPORT_TESTS,
)


def _nest(path: str, value: object, into: dict[str, Any]) -> dict[str, Any]:
    node = into
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return into


class PrequelUpdater:
    """Test, push and confirm a PAT on one Prequel source or destination."""

    _ok: ClassVar[frozenset[str]] = frozenset({"success", "ok", "succeeded"})

    def __init__(self, plugin: _Plugin, settings: PrequelSettings, context: UpdaterContext) -> None:
        self._plugin = plugin
        self._settings = settings
        self._ctx = context
        update, test = settings.update_path, settings.test_path
        candidates: dict[Purpose, tuple[Route, ...]] = {
            "object": (Route(update, CONFIGURED),) if update else plugin.object_routes,
            "test": plugin.test_routes if test is None else configured(test),
        }
        self._router = Router(settings.base_url, self.name, candidates)
        self._what = f"Prequel {plugin.label} {settings.id}"
        self._reach = Reach(f"Prequel at {settings.base_url}")

    @property
    def name(self) -> str:
        """Return e.g. ``prequel-source:abc``."""
        return f"{self._plugin.kind}:{self._settings.id}"

    def __repr__(self) -> str:
        return f"PrequelUpdater({self.name!r}, {self._settings.base_url!r})"

    def routes(self) -> list[str]:
        """Describe the routes this consumer uses (after a call) or will try, and their source."""
        return self._router.describe()

    def routes_documented(self) -> bool:
        """Return False when a route that answered is one Prequel does not document."""
        return not self._router.uses_undocumented()

    def _changes(self, pat: Secret) -> dict[str, Any]:
        body = _nest(self._settings.token_field, pat.reveal(), {})
        if self._settings.auth_method_field:
            _nest(self._settings.auth_method_field, self._settings.auth_method, body)
        return {self._plugin.body_key: body}

    async def preflight(self) -> None:
        """Read the object: proves the API key, the id and the base URL.

        With an overridden field path, also prove Prequel reads the token from it: a test with
        a made-up token there must fail. (If Prequel ignored the path, it would test the saved
        PAT, the push would change nothing, and revoking the old PAT would cut Prequel off.)
        """
        await self._routed("object", "GET", None)
        default = PrequelSettings.model_fields
        overridden = any(
            getattr(self._settings, f) != default[f].default
            for f in ("token_field", "auth_method_field", "auth_method")
        )
        if overridden and self._router.has("test"):
            await self._expect_rejection()

    async def _expect_rejection(self) -> None:
        junk = Secret(f"dapi{secrets.token_hex(16)}-invalid")
        try:
            await self._test(self._changes(junk), "a made-up token")
        except errors.ConsumerRejectedTokenError:
            return
        msg = (
            f"{self._what} accepted a made-up token placed at "
            f"{self._settings.token_field!r}, so it does not read the token from there. Fix "
            "token_field / auth_method_field (the default is "
            f"{DEFAULT_TOKEN_FIELD!r}); nothing was changed."
        )
        raise errors.ConsumerError(msg)

    async def test(self, pat: Secret) -> bool:
        """Ask Prequel to test *pat* without saving it; False when testing is switched off."""
        if not self._router.has("test") or not self._settings.test_before_push:
            return False
        await self._test(self._changes(pat), "the new PAT (not saved)")
        return True

    async def push(self, pat: Secret) -> None:
        """Save *pat* on the object with a PATCH of only the token fields."""
        await self._routed("object", "PATCH", self._changes(pat))

    async def confirm(self, pat: Secret) -> None:
        """Prove the saved configuration works: test it with no changes (or read it back)."""
        del pat  # Prequel never returns the token; the stored one is tested instead
        if not self._router.has("test"):
            await self._routed("object", "GET", None)
            return
        await self._test({self._plugin.body_key: {}}, "the saved PAT")

    async def _test(self, body: dict[str, Any], what: str) -> None:
        envelope = await self._routed("test", "POST", body)
        data = envelope.get("data")
        status = data.get("status") if isinstance(data, dict) else data
        if str(status).lower() not in self._ok:
            detail = data.get("message") if isinstance(data, dict) else None
            msg = (
                f"{self._what} tested {what} and it failed: "
                f"{detail or envelope.get('message') or 'no reason given'}. Check that the "
                "service principal can reach the SQL warehouse (CAN_USE on it, entitlements) "
                "and that the workspace's IP access list admits Prequel."
            )
            raise errors.ConsumerRejectedTokenError(msg)

    async def _routed(
        self, purpose: Purpose, method: str, body: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Send the request to the route that answers for *purpose*: on a 404, the next one.

        Each route's call is retried on its own; only a 404 moves on, and a 404 from every
        route is the error (nothing was read, saved or tested).
        """
        tried: list[str] = []
        for route in self._router.order(purpose):
            url = route.url(self._settings.base_url, self._settings.id)
            try:
                envelope = await retrying(self._ctx.retry, partial(self._send, method, url, body))
            except NotFoundError as exc:
                tried.append(f"{route.template.format(id=self._settings.id)} ({exc.said})")
                continue
            self._router.remember(purpose, route)
            return envelope
        msg = (
            f"{self._what} at {self._settings.base_url} ({method}) does not exist: 404 on "
            f"{' and '.join(tried)}. Check the {self._plugin.label} id and base_url; if your "
            "Prequel account uses other routes, set update_path / test_path. Nothing was changed."
        )
        raise errors.ConsumerError(msg)

    async def _send(self, method: str, url: str, body: dict[str, Any] | None) -> dict[str, Any]:
        api_key = await self._ctx.secrets.read(self._settings.api_key_secret_name)
        headers = {
            "X-API-KEY": api_key.reveal(),
            "X-Prequel-Api-Version": self._settings.api_version,
        }
        request = self._ctx.http.request(method, url, json=body, headers=headers)
        response = await self._reach.answer(request)
        where = f"{self._what} at {self._settings.base_url} ({method})"
        return json_answer(response, where, self._advice)

    def _advice(self, where: str, status: int, said: str) -> errors.ConsumerError | None:
        if status in {401, 403}:
            return errors.ConsumerAuthError(
                f"{where} rejected the API key from Key Vault secret "
                f"{self._settings.api_key_secret_name!r} ({status}: {said}). Check the key is "
                "current and matches the environment (sk_prod_ vs sk_staging_ keys) and base_url."
            )
        if status == 404:  # noqa: PLR2004
            return NotFoundError(f"{where} answered 404 ({said}).", said=said)
        return None


PLUGINS = (PrequelSourceFactory, PrequelDestinationFactory, PrequelImportSourceFactory)
"""The built-in Prequel kinds (the registry keys each by its ``kind``)."""
