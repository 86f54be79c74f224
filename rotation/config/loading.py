"""Load the rotator's configuration (TOML file, inline JSON or TOML) and say every problem.

The source is ``--config PATH`` or the ``ROTATION_CONFIG`` environment variable, which holds a
path or, for app settings, inline JSON or TOML. Validation happens once, up front; a
:class:`~rotation.errors.ConfigError` lists *every* problem with its field path and what to do.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

from pydantic import ValidationError

from rotation.config.models import PRINCIPAL_KINDS, Config
from rotation.config.schedule import SCHEDULE_VAR
from rotation.errors import ConfigError

__all__ = ["APP_ROOT", "ENV_VAR", "VAULT_VAR", "load_config", "parse_config"]

ENV_VAR = "ROTATION_CONFIG"
VAULT_VAR = "ROTATION_KEY_VAULT_URL"
"""The vault's URL as its own app setting (set by the Bicep); used when the config has none."""


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
