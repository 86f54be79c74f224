"""Load and validate the rotator's configuration (TOML file or inline JSON).

The source is ``--config PATH`` or the ``ROTATION_CONFIG`` environment variable, which holds a
path or, for app settings, inline JSON. Validation happens once, up front; a :class:`ConfigError`
lists *every* problem with its field path and what to do. Updater tables are validated by the
updater plugin that their ``kind`` names.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from pathlib import Path
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
    "PRINCIPAL_KINDS",
    "Config",
    "Defaults",
    "Principal",
    "Target",
    "UpdaterSpec",
    "load_config",
    "parse_config",
]

ENV_VAR = "ROTATION_CONFIG"
VAULT_VAR = "ROTATION_KEY_VAULT_URL"
"""The vault's URL as its own app setting (set by the Bicep); used when the config has none."""
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


def load_config(
    path: str | os.PathLike[str] | None = None, *, default_vault_url: str | None = None
) -> Config:
    """Load the configuration from *path*, else from ``$ROTATION_CONFIG``.

    The variable holds a path, or the configuration itself: inline JSON (starts with ``{``) or
    inline TOML (has a ``=`` or a line break and names no existing file). *default_vault_url*
    stands in for ``ROTATION_KEY_VAULT_URL`` when that is unset (``validate`` checks a file meant
    for an app whose setting will provide the vault).
    """
    env = _from_env(default_vault_url)
    if path is not None:
        return _load_file(Path(os.fspath(path)), env)
    source = os.environ.get(ENV_VAR, "").strip()
    if not source:
        msg = (
            f"No configuration: pass --config PATH or set {ENV_VAR} to a TOML path or inline JSON."
        )
        raise ConfigError(msg)
    if source.startswith("{"):
        return parse_config(_json(source, ENV_VAR), origin=ENV_VAR, **env)
    file = _existing_file(source)
    if file is None and ("=" in source or "\n" in source):
        return parse_config(_inline_toml(source), origin=f"{ENV_VAR} (inline TOML)", **env)
    return _load_file(file or _app_path(Path(source)), env)


def _existing_file(source: str) -> Path | None:
    """Return the file *source* names (here or beside the app), or None."""
    if "\n" in source:
        return None
    try:
        path = _app_path(Path(source))
        return path if path.is_file() else None
    except (OSError, ValueError):  # a name too long, a NUL: not a file
        return None


def _inline_toml(source: str) -> object:
    try:
        return tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        if "\n" in source:
            msg = f"{ENV_VAR} (inline TOML) is not valid TOML: {exc}."
        else:
            msg = (
                f"{ENV_VAR} names no existing file ({source[:200]!r}, looked up in the current "
                f"folder and beside the app) and, read as inline TOML because it has a '=', is not "
                f"valid TOML: {exc}. Give an existing path or a complete TOML configuration."
            )
        raise ConfigError(msg) from None


APP_ROOT = Path(__file__).resolve().parents[2]
"""The app root (beside function_app.py): rotation/config/ is two folders below it."""
"""The folder of ``function_app.py``: where the deployed package's files are."""


def _app_path(path: Path) -> Path:
    """Return *path*; a relative one that is not in the current folder is the app root's.

    In Azure the current folder of the worker is not guaranteed to be the app root.
    """
    if path.is_absolute() or path.exists():
        return path
    beside_app = APP_ROOT / path
    return beside_app if beside_app.exists() else path


def _from_env(default_vault_url: str | None = None) -> dict[str, str | None]:
    """Return the app settings that take part in validation: the vault's URL, the schedule."""
    return {
        "vault_url": os.environ.get(VAULT_VAR, "").strip() or default_vault_url,
        "schedule": os.environ.get(SCHEDULE_VAR, "").strip() or None,
    }


def _load_file(file: Path, env: dict[str, str | None]) -> Config:
    """Read and parse a TOML file (or JSON, by its suffix)."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"Cannot read configuration file {file}: {exc.strerror}."
        raise ConfigError(msg) from None
    except UnicodeDecodeError:
        msg = f"Configuration file {file} is not UTF-8 text."
        raise ConfigError(msg) from None
    data = _json(text, str(file)) if file.suffix == ".json" else _toml(text, str(file))
    return parse_config(data, origin=str(file), **env)


def _json(text: str, origin: str) -> object:
    try:
        return json.loads(text)
    except RecursionError:
        msg = f"{origin} holds JSON nested too deeply."
        raise ConfigError(msg) from None
    except json.JSONDecodeError as exc:
        msg = f"{origin} holds invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        raise ConfigError(msg) from None


def _toml(text: str, origin: str) -> object:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"{origin} is not valid TOML: {exc}."
        raise ConfigError(msg) from None


def parse_config(
    data: object,
    *,
    origin: str = "configuration",
    vault_url: str | None = None,
    schedule: str | None = None,
) -> Config:
    """Validate raw configuration *data*; raise one ``ConfigError`` listing every problem.

    *vault_url* (the ``ROTATION_KEY_VAULT_URL`` app setting) is used when the data has no
    ``key_vault_url``. *schedule* is the timer's NCRONTAB (``ROTATION_SCHEDULE``; default: the
    samples' every 6 hours): ``rotate_before_days`` must leave two of its periods.
    """
    if not isinstance(data, dict):
        msg = f"{origin}: the configuration must be a table/object at the top level."
        raise ConfigError(msg)
    if vault_url and "key_vault_url" not in data:
        data = {**data, "key_vault_url": vault_url}
    try:
        config = Config.model_validate(data, context={"schedule": schedule})
    except ValidationError as exc:
        problems = list(dict.fromkeys(_format(exc)))
    else:
        problems = _duplicates(config)
        if not problems:
            return config
    lines = "\n".join(f"  - {p}" for p in problems)
    msg = f"{origin} has {len(problems)} problem(s):\n{lines}"
    raise ConfigError(msg, problems=tuple(f"{origin}: {p}" for p in problems)) from None


def _duplicates(config: Config) -> list[str]:
    problems: list[str] = []
    for label, values in (
        ("target name", [t.name for t in config.targets]),
        ("secret_name", [t.secret_name for t in config.targets]),
    ):
        seen: set[str] = set()
        for i, value in enumerate(values):
            if value.lower() in seen:
                problems.append(
                    f"targets[{i}]: duplicate {label} {value!r} (names are compared ignoring "
                    "case, as Key Vault does); each target needs its own"
                )
            seen.add(value.lower())
    return problems


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


_KINDS = ", ".join(map(repr, PRINCIPAL_KINDS))
_MESSAGES = {  # (pydantic error type, path) → what to say instead of pydantic's words
    ("missing", "targets"): "missing — add at least one [[targets]] table (see the README)",
    ("tuple_type", "targets"): "must be a list of tables ([[targets]] in TOML)",
    ("missing", "key_vault_url"): f"missing — set key_vault_url, or the app setting {VAULT_VAR}",
}


def _format(exc: ValidationError) -> list[str]:
    """Return one ``path: message`` line per problem pydantic found."""
    out = []
    found = exc.errors(include_url=False, include_input=False)
    for err in found:
        deeper = any(e["loc"][: len(err["loc"])] == err["loc"] and e is not err for e in found)
        if err["type"] == "too_short" and deeper:
            continue  # the items' own errors say it better
        path = _path(err["loc"])
        message = _MESSAGES.get((err["type"], path), err["msg"].removeprefix("Value error, "))
        if err["type"] == "extra_forbidden" and re.search(r"secret|token|key", path, re.IGNORECASE):
            message += (
                " — secret values never go in the configuration: store them in Key Vault and "
                "name the secret with a *_secret_name field"
            )
        if err["type"] == "union_tag_invalid":
            message = f"kind must be one of {_KINDS}"
        out.append(f"{path or '(top level)'}: {message}")
    return out


def _path(loc: tuple[int | str, ...]) -> str:
    """Return a pydantic location as ``targets[0].principal.client_id``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _KEY.fullmatch(part):  # an odd key is quoted, never split a line
            path += f"[{part!a}]"
        elif part not in PRINCIPAL_KINDS:  # pydantic names the union member: not a field
            path += f".{part}" if path else part
    return path
