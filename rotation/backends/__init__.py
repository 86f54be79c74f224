"""Backends: the services a run talks to, each behind one adapter, and the locks.

Key Vault (:class:`KeyVaultStore`, its client and throttle policy), a Databricks workspace
(:class:`Workspace`, its error table), the per-target locks (:class:`Lock` and its kinds), the HTTP
helpers and the retry policy every adapter shares. Errors are translated here, at the boundary,
into :mod:`rotation.errors`.
"""

from __future__ import annotations

from rotation.backends.auth import DATABRICKS_SCOPE, BearerAuth, StaticBearerAuth
from rotation.backends.azure import AzureOptions
from rotation.backends.databricks import Me, NewToken, TokenInfo, Workspace
from rotation.backends.databricks_errors import Admin, translate
from rotation.backends.http import (
    UNTRUSTED_ADVICE,
    USER_AGENT,
    HostPools,
    is_loopback,
    is_transient_status,
    json_body,
    retry_after,
    untrusted_certificate,
)
from rotation.backends.keyvault import KeyVaultStore
from rotation.backends.keyvault_client import key_vault_client, throttle_wait
from rotation.backends.lease import BlobLeaseLock
from rotation.backends.local_lock import LOCK_DIR_SETTING, LocalFileLock
from rotation.backends.lock import Lease, Lock, NullLock
from rotation.backends.retry import RetryPolicy, retrying

__all__ = [
    "DATABRICKS_SCOPE",
    "LOCK_DIR_SETTING",
    "UNTRUSTED_ADVICE",
    "USER_AGENT",
    "Admin",
    "AzureOptions",
    "BearerAuth",
    "BlobLeaseLock",
    "HostPools",
    "KeyVaultStore",
    "Lease",
    "LocalFileLock",
    "Lock",
    "Me",
    "NewToken",
    "NullLock",
    "RetryPolicy",
    "StaticBearerAuth",
    "TokenInfo",
    "Workspace",
    "is_loopback",
    "is_transient_status",
    "json_body",
    "key_vault_client",
    "retry_after",
    "retrying",
    "throttle_wait",
    "translate",
    "untrusted_certificate",
]
