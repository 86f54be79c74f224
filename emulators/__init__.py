"""Local HTTPS stand-ins for Entra ID, Microsoft Graph, Databricks, Key Vault and Prequel.

Each emulator is a Starlette app served by uvicorn on 127.0.0.1 over TLS (a throwaway
trustme CA), in a thread of its own, following the contract sheets in ``docs/reference/``.
They never contact anything outside loopback. Start them all with `Emulators`. The Function
App's managed identity endpoint is served beside them over plain HTTP, as App Service does.
"""

from __future__ import annotations

from emulators.clock import Clock
from emulators.databricks_model import DatabricksConf, Principal, Token
from emulators.databricks_state import DatabricksState
from emulators.entra_state import AppCredential, EntraState, IssuedToken, ManagedIdentity
from emulators.faults import Fault, FaultPlan
from emulators.graph_state import GraphState
from emulators.harness import Emulators
from emulators.keyvault_state import KeyVaultState, SecretVersion
from emulators.prequel_state import Connection, ConnectionTest, PrequelState
from emulators.registry import SecretRegistry
from emulators.requestlog import LoggedRequest, RequestLog

__all__ = [
    "AppCredential",
    "Clock",
    "Connection",
    "ConnectionTest",
    "DatabricksConf",
    "DatabricksState",
    "Emulators",
    "EntraState",
    "Fault",
    "FaultPlan",
    "GraphState",
    "IssuedToken",
    "KeyVaultState",
    "LoggedRequest",
    "ManagedIdentity",
    "PrequelState",
    "Principal",
    "RequestLog",
    "SecretRegistry",
    "SecretVersion",
    "Token",
]
