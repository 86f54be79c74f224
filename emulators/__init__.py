"""Local HTTPS stand-ins for Entra ID, Microsoft Graph, Databricks, Key Vault, Prequel and more.

The consumers beside Prequel: Azure DevOps variable groups, Fivetran destinations, GitHub Actions
secrets and a webhook receiver speaking pat-rotator's webhook protocol.

Each emulator is a Starlette app served by uvicorn on 127.0.0.1 over TLS (a throwaway
trustme CA), in a thread of its own, following the contract sheets in ``docs/reference/``.
They never contact anything outside loopback. Start them all with `Emulators`. The Function
App's managed identity endpoint is served beside them over plain HTTP, as App Service does.
"""

from __future__ import annotations

from emulators.clock import Clock
from emulators.databricks_model import DatabricksConf, Principal, Token
from emulators.databricks_state import DatabricksState
from emulators.devops_state import DevOpsState, VariableGroup
from emulators.entra_state import AppCredential, EntraState, IssuedToken, ManagedIdentity
from emulators.faults import Fault, FaultPlan
from emulators.fivetran_state import Destination, FivetranState, SetupTest
from emulators.github_state import ActionsSecret, GitHubState
from emulators.graph_state import GraphState
from emulators.harness import Emulators
from emulators.keyvault_state import KeyVaultState, SecretVersion
from emulators.prequel_state import Connection, ConnectionTest, PrequelState
from emulators.registry import SecretRegistry
from emulators.requestlog import LoggedRequest, RequestLog
from emulators.webhook_state import ReceivedEvent, Receiver, WebhookState

__all__ = [
    "ActionsSecret",
    "AppCredential",
    "Clock",
    "Connection",
    "ConnectionTest",
    "DatabricksConf",
    "DatabricksState",
    "Destination",
    "DevOpsState",
    "Emulators",
    "EntraState",
    "Fault",
    "FaultPlan",
    "FivetranState",
    "GitHubState",
    "GraphState",
    "IssuedToken",
    "KeyVaultState",
    "LoggedRequest",
    "ManagedIdentity",
    "PrequelState",
    "Principal",
    "ReceivedEvent",
    "Receiver",
    "RequestLog",
    "SecretRegistry",
    "SecretVersion",
    "SetupTest",
    "Token",
    "VariableGroup",
    "WebhookState",
]
