"""Start the Entra ID, Graph, Databricks, Key Vault and Prequel emulators on loopback HTTPS.

Beside them the consumers a PAT is pushed to: Azure DevOps variable groups, Fivetran
destinations, GitHub Actions secrets and a webhook receiver (services ``devops``,
``fivetran``, ``github``, ``webhook`` in the request log and the fault plan).

Beside them, the Function App's managed identity endpoint, on loopback plain HTTP as in Azure.
"""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Self

from emulators.clock import Clock
from emulators.databricks import build_databricks_app, databricks_error_body
from emulators.databricks_state import DatabricksState
from emulators.devops import build_devops_app, devops_error_body
from emulators.devops_state import DevOpsState
from emulators.entra import build_entra_app, entra_error_body
from emulators.entra_state import EntraState
from emulators.faults import FaultPlan
from emulators.fivetran import build_fivetran_app, fivetran_error_body
from emulators.fivetran_state import FivetranState
from emulators.github import build_github_app, github_error_body
from emulators.github_state import GitHubState
from emulators.graph import build_graph_app, graph_error_body
from emulators.graph_state import GraphState
from emulators.identity import (
    IDENTITY_PATH,
    IdentityServerThread,
    build_identity_app,
    identity_error_body,
)
from emulators.keyvault import build_keyvault_app, keyvault_error_body
from emulators.keyvault_state import KeyVaultState
from emulators.middleware import ErrorBody, ServiceMiddleware
from emulators.prequel import build_prequel_app, prequel_error_body
from emulators.prequel_state import PrequelState
from emulators.registry import SecretRegistry
from emulators.requestlog import RequestLog
from emulators.server import ServerThread
from emulators.tls import LoopbackTLS
from emulators.webhook import build_webhook_app, webhook_error_body
from emulators.webhook_state import WebhookState

if TYPE_CHECKING:
    import tempfile
    from pathlib import Path
    from types import TracebackType

    from starlette.types import ASGIApp

__all__ = ["Emulators"]


class Emulators:
    """Start Entra ID, Graph, Databricks, Key Vault and Prequel emulators on loopback HTTPS.

    A context manager: ``with Emulators() as emu: ...``.

    Beside them the other consumers: ``devops`` (`DevOpsState`, which accepts Entra tokens for
    the DevOps resource, managed identities' included), ``fivetran``, ``github`` and
    ``webhook``, at ``devops_url``, ``fivetran_url``, ``github_url`` and ``webhook_url``.

    State objects exist from construction (so tests may seed them before `start`); URLs
    and ``ca_path`` are valid between `start` and `stop`. One fault plan, request log and
    secret registry are shared by all servers.

    The Function App's managed identity endpoint (service ``identity`` in the request log and
    the fault plan) serves `add_managed_identity`'s identities at ``identity_endpoint`` over
    plain HTTP; `identity_env` gives a process the variables azure-identity reads.

    Microsoft Graph (service ``graph``, at ``graph_url``) shares the directory with Entra ID:
    ``graph`` is a `GraphState` over ``entra``, so a secret added through ``addPassword`` is a
    client secret the token endpoint accepts (after ``graph.replication_delay`` virtual seconds).
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.secrets = SecretRegistry()
        self.faults = FaultPlan()
        self.requests = RequestLog()
        self.tenant_id = str(uuid.uuid4())
        self.entra = EntraState(tenant_id=self.tenant_id, registry=self.secrets, clock=self.clock)
        self.graph = GraphState(entra=self.entra)
        self.databricks = self._new_workspace()
        self.keyvault = KeyVaultState(clock=self.clock, tenant_id=self.tenant_id)
        self.prequel = PrequelState(registry=self.secrets)
        self.devops = DevOpsState(registry=self.secrets, clock=self.clock)
        self.fivetran = FivetranState(registry=self.secrets, clock=self.clock)
        self.github = GitHubState(registry=self.secrets, clock=self.clock)
        self.webhook = WebhookState(registry=self.secrets, clock=self.clock)
        self.identity_header = str(uuid.uuid4())
        """The app's ``IDENTITY_HEADER``: the endpoint answers 401 without it."""
        self.secrets.add(self.identity_header, "identity_header")
        self.entra_url = self.databricks_url = self.keyvault_url = self.prequel_url = ""
        self.graph_url = ""
        """``https://127.0.0.1:<port>`` of Graph: requests go to ``{graph_url}/v1.0/...``."""
        self.identity_url = ""
        self.devops_url = self.fivetran_url = self.github_url = self.webhook_url = ""
        """``http://127.0.0.1:<port>`` of the identity endpoint (see `identity_endpoint`)."""
        self._servers: list[ServerThread] = []
        self._tls: LoopbackTLS | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._lock = threading.Lock()
        self._started = False

    @property
    def ca_path(self) -> Path:
        """PEM file of the CA that signed every emulator's certificate."""
        if self._tls is None:
            raise RuntimeError("the emulators are not running: call start() first")
        return self._tls.ca_path

    @property
    def identity_endpoint(self) -> str:
        """The app's ``IDENTITY_ENDPOINT``: ``http://127.0.0.1:<port>/msi/token``."""
        if not self.identity_url:
            raise RuntimeError("the emulators are not running: call start() first")
        return f"{self.identity_url}{IDENTITY_PATH}"

    def identity_env(self) -> dict[str, str]:
        """Return ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` as App Service sets them."""
        return {
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.identity_header,
        }

    def add_managed_identity(self, *, system: bool = False, name: str | None = None) -> str:
        """Assign a user-assigned identity (or the system-assigned one) to the app.

        Returns its client id, which is also its application id: add it to a workspace with
        ``databricks.add_service_principal(client_id)`` as for an Entra app. The system-assigned
        identity is one per app; asking again returns the same client id.
        """
        return self.entra.add_managed_identity(name, system=system).client_id

    def start(self) -> None:
        """Start all servers (idempotent)."""
        with self._lock:
            if self._started:
                return
            self._tls, self._tempdir = LoopbackTLS.create()
            self.prequel.ca_path = self._tls.ca_path
            self.fivetran.trust.ca_path = self.webhook.trust.ca_path = self._tls.ca_path
            self.faults.closing.clear()
            servers = [
                self._server("entra", build_entra_app(self.entra), entra_error_body),
                self._server(
                    "databricks", build_databricks_app(self.databricks), databricks_error_body
                ),
                self._server(
                    "keyvault", build_keyvault_app(self.keyvault, self.entra), keyvault_error_body
                ),
                self._server("prequel", build_prequel_app(self.prequel), prequel_error_body),
                self._server("graph", build_graph_app(self.graph), graph_error_body),
                self._server(
                    "devops", build_devops_app(self.devops, self.entra), devops_error_body
                ),
                self._server("fivetran", build_fivetran_app(self.fivetran), fivetran_error_body),
                self._server("github", build_github_app(self.github), github_error_body),
                self._server("webhook", build_webhook_app(self.webhook), webhook_error_body),
                self._server(
                    "identity",
                    build_identity_app(self.entra, self.identity_header),
                    identity_error_body,
                    plain_http=True,
                ),
            ]
            try:
                self._launch(servers)
            except BaseException:
                self._shutdown()
                raise
            (
                self.entra_url,
                self.databricks_url,
                self.keyvault_url,
                self.prequel_url,
                self.graph_url,
                self.devops_url,
                self.fivetran_url,
                self.github_url,
                self.webhook_url,
                self.identity_url,
            ) = (s.url for s in servers)
            self._started = True

    def add_workspace(self) -> tuple[DatabricksState, str]:
        """Start one more Databricks workspace (same Entra tenant); return its state and URL."""
        with self._lock:
            if not self._started:
                raise RuntimeError("start() the emulators before adding a workspace")
            state = self._new_workspace()
            server = self._server("databricks", build_databricks_app(state), databricks_error_body)
            self._launch([server])
            return state, server.url

    def stop(self) -> None:
        """Stop every server, join its thread and delete the TLS files."""
        with self._lock:
            self._shutdown()
            self._started = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _new_workspace(self) -> DatabricksState:
        return DatabricksState(entra=self.entra, clock=self.clock, registry=self.secrets)

    def _server(
        self, service: str, app: ASGIApp, error_body: ErrorBody, *, plain_http: bool = False
    ) -> ServerThread:
        if self._tls is None:
            raise RuntimeError("TLS material is missing")
        wrapped = ServiceMiddleware(
            app, service=service, faults=self.faults, log=self.requests, error_body=error_body
        )
        kind = IdentityServerThread if plain_http else ServerThread
        server = kind(wrapped, self._tls, service)
        self._servers.append(server)
        return server

    @staticmethod
    def _launch(servers: list[ServerThread]) -> None:
        for server in servers:
            server.begin()
        for server in servers:
            server.wait_ready()

    def _shutdown(self) -> None:
        """Stop the servers; the TLS folder is removed even if stopping is interrupted."""
        try:
            self.faults.close()
            for server in self._servers:
                server.signal_stop()
            for server in self._servers:
                server.join()
            self._servers.clear()
        finally:
            if self._tempdir is not None:
                self._tempdir.cleanup()
            self._tempdir = self._tls = None

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"Emulators({state}, tenant_id={self.tenant_id!r})"
