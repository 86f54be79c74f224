"""The configuration: its model, how it is loaded, and the app settings beside it.

:func:`load_config` reads ``--config PATH`` or ``ROTATION_CONFIG`` (a path, inline JSON or TOML)
and validates everything up front (:func:`parse_config` for data already read); a
:class:`~rotation.errors.ConfigError` lists every problem. :class:`AppSettings` are the Function
App's own settings (storage, queue, CA file).
"""

from __future__ import annotations

from rotation.config.appsettings import AppSettings
from rotation.config.loading import APP_ROOT, ENV_VAR, VAULT_VAR, load_config, parse_config
from rotation.config.models import (
    INACTIVITY_DAYS,
    PRINCIPAL_KINDS,
    Config,
    Defaults,
    Principal,
    Target,
    UpdaterSpec,
)
from rotation.config.schedule import DEFAULT_SCHEDULE, SCHEDULE_VAR, longest_gap_hours

__all__ = [
    "APP_ROOT",
    "DEFAULT_SCHEDULE",
    "ENV_VAR",
    "INACTIVITY_DAYS",
    "PRINCIPAL_KINDS",
    "SCHEDULE_VAR",
    "VAULT_VAR",
    "AppSettings",
    "Config",
    "Defaults",
    "Principal",
    "Target",
    "UpdaterSpec",
    "load_config",
    "longest_gap_hours",
    "parse_config",
]
