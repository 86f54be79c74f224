"""Updaters: the consumers a new PAT is pushed to (Prequel, GitHub, webhooks), one Protocol."""

from __future__ import annotations

from rotation.updaters.base import Restores, SecretReader, Updater, UpdaterContext, UpdaterPlugin

__all__ = ["Restores", "SecretReader", "Updater", "UpdaterContext", "UpdaterPlugin"]
