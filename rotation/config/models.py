"""The configuration's model: the root table, ``[defaults]``, each target and its consumers.

A target's ``[targets.principal]`` table is one of the principal kinds'
(:mod:`rotation.principals`); each updater table is validated by the updater plugin its ``kind``
names. Loading and the problem messages are :mod:`rotation.config.loading`'s.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from rotation.config.schedule import DEFAULT_SCHEDULE, SCHEDULE_VAR, longest_gap_hours
from rotation.errors import ConfigError
from rotation.fields import HostUrl, HttpsUrl, Model, SecretName
from rotation.principals import PRINCIPAL_KINDS, Principal
from rotation.updaters.registry import plugin

__all__ = [
    "INACTIVITY_DAYS",
    "PRINCIPAL_KINDS",
    "Config",
    "Defaults",
    "Principal",
    "Target",
    "UpdaterSpec",
]

_TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _target_name(value: str) -> str:
    if not _TARGET_NAME.fullmatch(value):
        msg = (
            f"{value!r} is not a valid target name: start with a letter or digit, then up to 62 "
            "letters, digits, '.', '_' or '-'"
        )
        raise ValueError(msg)
    return value


def _at_least_a_day(value: int) -> int:
    if value < 1:
        msg = (
            f"rotate_before_days is {value}: a PAT would be rotated only after it died; set "
            "rotate_before_days to at least 1 (and at least two timer periods, ROTATION_SCHEDULE)"
        )
        raise ValueError(msg)
    return value


_Model = Model


INACTIVITY_DAYS = 90
"""Azure Databricks revokes a PAT that has not been used for this many days (not configurable)."""

_SCOPE = re.compile(r"[a-z][a-z0-9-]{0,62}")


def _scopes(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    bad = [s for s in value if not _SCOPE.fullmatch(s)]
    if bad or not value:
        msg = f"scopes must be a non-empty list of API scope names such as 'sql', got {value!r}"
        raise ValueError(msg)
    return tuple(sorted(set(value)))


class Defaults(_Model):
    """Rotation timing and PAT shape shared by all targets unless a target overrides them."""

    lifetime_days: int = Field(default=90, ge=1, le=730)
    rotate_before_days: Annotated[int, AfterValidator(_at_least_a_day)] = Field(default=30, le=729)
    """Rotate when less than this is left; at least 1 and two timer periods (see Target)."""
    grace_period_hours: float = Field(default=0, ge=0, le=24 * 30)
    health_check_hours: float = Field(default=6, ge=0, le=24 * 90)
    """How often the current PAT is looked for in the principal's token list (0: never)."""
    scopes: Annotated[tuple[str, ...] | None, AfterValidator(_scopes)] = None
    """API scopes of each new PAT; None keeps the scopes of the PAT it replaces."""
    admin_token_secret_name: SecretName | None = None
    """A workspace admin's PAT in Key Vault, for ``doctor``'s admin checks and ``grant`` only."""
    rotate_credential: bool = True
    """Rotate the principal's own credential (kinds that can) before it expires; False: warn."""
    rotate_credential_before_days: int = Field(default=30, ge=1, le=729)
    """Rotate the credential when less than this is left on its Key Vault ``exp``."""
    credential_lifetime_days: int = Field(default=365, ge=2, le=730)
    """Lifetime of each new credential (Entra ≤ the tenant's policy; Databricks ≤ 730)."""


class UpdaterSpec(_Model):
    """One consumer of a target's PAT: the plugin's kind and its settings, validated by it.

    In the configuration it is one flat table, ``{"kind": ..., **settings}``; the plugin that
    ``kind`` names validates the settings (their problems keep their paths).
    """

    kind: str
    settings: BaseModel

    @model_validator(mode="wrap")
    @classmethod
    def _by_plugin(cls, data: Any, handler: ModelWrapValidatorHandler[UpdaterSpec]) -> UpdaterSpec:  # noqa: ANN401 — raw configuration
        if not isinstance(data, dict) or "settings" in data:
            return handler(data)
        kind = data.get("kind")
        if not isinstance(kind, str):
            raise _kind_error(cls, "needs a 'kind' (e.g. 'prequel-source')", kind)
        try:
            found = plugin(kind)
        except ConfigError as exc:
            raise _kind_error(cls, str(exc), kind) from None
        settings = found.settings_model.model_validate(
            {k: v for k, v in data.items() if k != "kind"}
        )
        return cls(kind=kind, settings=settings)


def _kind_error(model: type[BaseModel], message: str, value: object) -> ValidationError:
    """Return a validation error about an updater table's ``kind`` field."""
    error = PydanticCustomError("updater_kind", message)
    detail = InitErrorDetails(type=error, loc=("kind",), input=value)
    return ValidationError.from_exception_data(model.__name__, [detail])


class Target(Defaults):
    """One PAT to keep rotated: where it is minted, where it is stored, who consumes it.

    Its timing fields are :class:`Defaults`' (the configuration's ``[defaults]`` fill them in).
    """

    name: Annotated[str, AfterValidator(_target_name)]
    workspace_url: HostUrl
    secret_name: SecretName
    principal: Principal
    updaters: tuple[UpdaterSpec, ...] = ()

    @model_validator(mode="after")
    def _its_principal_can_use_its_scopes(self) -> Target:
        problem = self.principal.scopes_problem(self.scopes)
        if problem is not None:
            raise ValueError(problem)
        return self

    def inactivity_warning(self) -> str | None:
        """Say when this target's PAT may be revoked for inactivity before it is rotated."""
        unused_for = self.lifetime_days - self.rotate_before_days
        if self.updaters or unused_for <= INACTIVITY_DAYS:
            return None
        return (
            f"target {self.name}: Key Vault is its only consumer and its PAT lives {unused_for} "
            f"days before it is rotated, but Azure Databricks revokes a PAT unused for "
            f"{INACTIVITY_DAYS} days; the health check then heals it, so its rotations will "
            f"show 'healed'. Keep lifetime_days - rotate_before_days ≤ {INACTIVITY_DAYS}."
        )

    @model_validator(mode="after")
    def _credential_timing_fits(self) -> Target:
        if self.rotate_credential and (
            self.credential_lifetime_days <= self.rotate_credential_before_days
        ):
            msg = (
                f"credential_lifetime_days ({self.credential_lifetime_days}) must be longer than "
                f"rotate_credential_before_days ({self.rotate_credential_before_days}); "
                "otherwise every new credential is due at once"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _timing_fits(self) -> Target:
        if self.lifetime_days * 24 <= self.rotate_before_days * 24 + self.grace_period_hours:
            msg = (
                f"lifetime_days ({self.lifetime_days}) must be longer than rotate_before_days "
                f"({self.rotate_before_days}) plus the grace period ({self.grace_period_hours} h); "
                "otherwise every new PAT is due at once"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _due_before_the_timer_misses_it(self, info: ValidationInfo) -> Target:
        """Leave two timer periods (one run, one retry) between due and expiry."""
        schedule = (info.context or {}).get("schedule") or DEFAULT_SCHEDULE
        period = longest_gap_hours(schedule)
        if period is None or self.rotate_before_days * 24 >= 2 * period:
            return self
        need = math.ceil(2 * period / 24)
        msg = (
            f"rotate_before_days ({self.rotate_before_days}) must leave two timer periods before "
            f"expiry (one run and one retry), but the timer ({SCHEDULE_VAR} {schedule!r}) can wait "
            f"{period:g} h between runs: set rotate_before_days to at least {need}, or run the "
            f"timer more often ({SCHEDULE_VAR})"
        )
        raise ValueError(msg)


class Config(_Model):
    """The whole configuration: one Key Vault and the targets whose state it holds."""

    key_vault_url: HttpsUrl
    targets: tuple[Target, ...] = Field(min_length=1)
    defaults: Defaults = Defaults()
    concurrency: int = Field(default=8, ge=1, le=256)
    orphan_min_age_minutes: float = Field(default=15, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _fill_in_defaults(cls, data: Any) -> Any:  # noqa: ANN401 — raw configuration
        """Give each target table the ``[defaults]`` it does not set itself (if they are valid)."""
        if not isinstance(data, dict) or not isinstance(data.get("targets"), list):
            return data
        try:
            defaults = Defaults.model_validate(data.get("defaults", {}))
        except ValidationError:
            return data  # the `defaults` field reports what is wrong with them
        given = defaults.model_dump(exclude_unset=True)
        targets = [given | t if isinstance(t, dict) else t for t in data["targets"]]
        return {**data, "targets": targets}

    def target(self, name: str) -> Target | None:
        """Return the target called *name*, if any."""
        return next((t for t in self.targets if t.name == name), None)

    def warnings(self) -> list[str]:
        """Return what may surprise the user about this configuration (it still works)."""
        return [w for t in self.targets if (w := t.inactivity_warning())]
