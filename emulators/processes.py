"""Run the emulator services in processes of their own, so a client's cost can be measured alone.

`ServiceCluster` starts Entra ID, Key Vault, Prequel and one or more Databricks workspaces (and,
with ``consumers=True``, the Azure DevOps, Fivetran, GitHub and webhook consumers), each
one uvicorn server in a spawned process of its own, behind one throw-away TLS CA: the emulators no
longer share a GIL (or a CPU figure) with the process under test, and several workspaces are
several hosts, as real targets are. ``scripts/bench.py`` uses it for the scale figure.

The parent drives each process's state through a pipe: `ServiceProcess.call` runs one method of
the process's state, fault plan, request log or clock and returns its (picklable) result.
`ServiceCluster.view` gives an `Emulators`-shaped facade whose ``entra`` / ``databricks`` /
``keyvault`` / ``prequel`` attributes forward their method calls that way, so that
`emulators.scenario.seed_target` seeds a target across the processes unchanged.

Access tokens are issued by the Entra process; the Key Vault and Databricks processes check one
by asking the Entra process once and keeping the answer (so `EntraState.expire_tokens` in the
Entra process is not seen by them: a bench harness, not a test harness).

Microsoft Graph shares the directory with Entra ID, so the Entra process serves it too, on a port
of its own (``graph_url``; its calls target ``graph``). Each process keeps its own virtual clock.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import resource
import secrets
import threading
import traceback
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Client, Listener
from typing import TYPE_CHECKING, Any, Self

from emulators.clock import Clock
from emulators.entra_state import EntraState, IssuedToken
from emulators.faults import FaultPlan
from emulators.registry import SecretRegistry
from emulators.requestlog import RequestLog
from emulators.tls import LoopbackTLS

if TYPE_CHECKING:
    import tempfile
    from collections.abc import Callable
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess
    from pathlib import Path
    from types import TracebackType

    from starlette.types import ASGIApp

    from emulators.middleware import ErrorBody

__all__ = ["ClusterView", "EmulatorProcessError", "ServiceCluster", "ServiceProcess"]

SERVICES = ("entra", "graph", "databricks", "keyvault", "prequel")
CONSUMER_SERVICES = ("devops", "fivetran", "github", "webhook")
"""Started only by ``ServiceCluster(consumers=True)``."""
_START_TIMEOUT_SECONDS = 60.0
_STOP_TIMEOUT_SECONDS = 10.0
_CALL_TIMEOUT_SECONDS = 120.0
Address = tuple[str, int]


class EmulatorProcessError(RuntimeError):
    """A call into an emulator process failed there (the message carries its traceback)."""


@dataclass(frozen=True, slots=True)
class _Spec:
    """What a child process needs to build and serve one service."""

    service: str
    tls: LoopbackTLS
    tenant_id: str
    authkey: bytes
    entra_address: Address | None = None
    """Where the Entra process answers token lookups (Key Vault and Databricks use it)."""


class _RemoteEntra(EntraState):
    """An `EntraState` whose `lookup` asks the Entra process (once per token: tokens are final)."""

    def __init__(
        self, *, tenant_id: str, registry: SecretRegistry, address: Address, authkey: bytes
    ) -> None:
        super().__init__(tenant_id=tenant_id, registry=registry)
        self._address = address
        self._authkey = authkey
        self._remote: Connection | None = None
        self._remote_lock = threading.Lock()
        self._known: dict[str, IssuedToken] = {}

    def lookup(self, access_token: str) -> IssuedToken | None:
        known = self._known.get(access_token)
        if known is not None:
            return known
        with self._remote_lock:
            if self._remote is None:
                self._remote = Client(self._address, authkey=self._authkey)
            self._remote.send(access_token)
            token: IssuedToken | None = self._remote.recv()
        if token is not None:
            self._known[access_token] = token
        return token

    def resolve(self, access_token: str) -> IssuedToken | None:
        token = self.lookup(access_token)
        return token if token is not None and token.seconds_left() > 0 else None


def _serve_lookups(entra: EntraState, listener: Listener) -> None:
    """Answer token lookups from the other processes, one thread per connection."""

    def answer(conn: Connection) -> None:
        with conn:
            while True:
                try:
                    token = conn.recv()
                except (EOFError, OSError):
                    return
                conn.send(entra.lookup(token))

    while True:
        try:
            conn = listener.accept()
        except OSError:
            return
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


def _build(spec: _Spec, registry: SecretRegistry, clock: Clock) -> tuple[Any, ASGIApp, ErrorBody]:
    """Return the service's state, its ASGI app and its error body (imports stay per service)."""
    if spec.service == "entra":
        from emulators.entra import build_entra_app, entra_error_body  # noqa: PLC0415

        entra = EntraState(tenant_id=spec.tenant_id, registry=registry, clock=clock)
        return entra, build_entra_app(entra), entra_error_body
    if spec.service == "prequel":
        from emulators.prequel import build_prequel_app, prequel_error_body  # noqa: PLC0415
        from emulators.prequel_state import PrequelState  # noqa: PLC0415

        prequel = PrequelState(registry=registry, ca_path=spec.tls.ca_path)
        return prequel, build_prequel_app(prequel), prequel_error_body
    if spec.service in ("fivetran", "github", "webhook"):
        return _build_consumer(spec, registry, clock)
    if spec.entra_address is None:
        raise ValueError(f"{spec.service} needs the Entra process's address")
    remote = _RemoteEntra(
        tenant_id=spec.tenant_id,
        registry=registry,
        address=spec.entra_address,
        authkey=spec.authkey,
    )
    if spec.service == "keyvault":
        from emulators.keyvault import build_keyvault_app, keyvault_error_body  # noqa: PLC0415
        from emulators.keyvault_state import KeyVaultState  # noqa: PLC0415

        vault = KeyVaultState(clock=clock, tenant_id=spec.tenant_id)
        return vault, build_keyvault_app(vault, remote), keyvault_error_body
    if spec.service == "devops":
        from emulators.devops import build_devops_app, devops_error_body  # noqa: PLC0415
        from emulators.devops_state import DevOpsState  # noqa: PLC0415

        devops = DevOpsState(registry=registry, clock=clock)
        return devops, build_devops_app(devops, remote), devops_error_body
    if spec.service == "databricks":
        from emulators.databricks import (  # noqa: PLC0415
            build_databricks_app,
            databricks_error_body,
        )
        from emulators.databricks_state import DatabricksState  # noqa: PLC0415

        workspace = DatabricksState(entra=remote, clock=clock, registry=registry)
        return workspace, build_databricks_app(workspace), databricks_error_body
    raise ValueError(f"unknown service {spec.service!r}")


def _graph_of(entra: EntraState) -> Any:  # noqa: ANN401 - GraphState, imported lazily
    from emulators.graph_state import GraphState  # noqa: PLC0415

    return GraphState(entra=entra)


def _graph_app(graph: Any) -> tuple[ASGIApp, ErrorBody]:  # noqa: ANN401
    from emulators.graph import build_graph_app, graph_error_body  # noqa: PLC0415

    return build_graph_app(graph), graph_error_body


def _build_consumer(
    spec: _Spec, registry: SecretRegistry, clock: Clock
) -> tuple[Any, ASGIApp, ErrorBody]:
    """Build the Fivetran, GitHub or webhook consumer (none of them needs Entra)."""
    if spec.service == "fivetran":
        from emulators.fivetran import build_fivetran_app, fivetran_error_body  # noqa: PLC0415
        from emulators.fivetran_state import FivetranState  # noqa: PLC0415

        fivetran = FivetranState(registry=registry, clock=clock, ca_path=spec.tls.ca_path)
        return fivetran, build_fivetran_app(fivetran), fivetran_error_body
    if spec.service == "github":
        from emulators.github import build_github_app, github_error_body  # noqa: PLC0415
        from emulators.github_state import GitHubState  # noqa: PLC0415

        github = GitHubState(registry=registry, clock=clock)
        return github, build_github_app(github), github_error_body
    from emulators.webhook import build_webhook_app, webhook_error_body  # noqa: PLC0415
    from emulators.webhook_state import WebhookState  # noqa: PLC0415

    webhook = WebhookState(registry=registry, clock=clock, ca_path=spec.tls.ca_path)
    return webhook, build_webhook_app(webhook), webhook_error_body


class _Helpers:
    """Calls of target ``child``: facts about the process itself."""

    def __init__(self, requests: RequestLog) -> None:
        self._requests = requests

    def statuses(self, method: str | None = None) -> dict[int, int]:
        """Count the logged requests (of *method*) by status."""
        counts: dict[int, int] = {}
        for entry in self._requests.entries():
            if method is None or entry.method == method:
                counts[entry.status] = counts.get(entry.status, 0) + 1
        return counts

    def per_service(self) -> dict[str, int]:
        """Count the logged requests by service (the Entra process serves Graph too)."""
        counts: dict[str, int] = {}
        for entry in self._requests.entries():
            counts[entry.service] = counts.get(entry.service, 0) + 1
        return counts

    def usage(self) -> tuple[float, float]:
        """Return this process's CPU seconds (user + system) and peak RSS in MB."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _answer_calls(conn: Connection, targets: dict[str, Any]) -> None:  # pragma: no cover
    """Run the parent's calls on ``targets`` until it says stop (or goes away)."""
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] == "stop":
            return
        _, target, method, args, kwargs, discard = message
        try:
            result = getattr(targets[target], method)(*args, **kwargs)
        except Exception:  # reported to the caller, who raises it
            conn.send(("error", traceback.format_exc()))
            continue
        conn.send(("ok", None if discard else result))


def _child_main(spec: _Spec, conn: Connection) -> None:  # pragma: no cover - runs in the child
    """Serve one service and answer the parent's calls until it says stop."""
    from emulators.middleware import ServiceMiddleware  # noqa: PLC0415
    from emulators.server import ServerThread  # noqa: PLC0415

    registry, clock, faults, requests = SecretRegistry(), Clock(), FaultPlan(), RequestLog()
    listener: Listener | None = None
    targets: dict[str, Any] = {"faults": faults, "requests": requests, "clock": clock}
    servers: list[ServerThread] = []

    def serve(service: str, app: ASGIApp, error_body: ErrorBody) -> ServerThread:
        wrapped = ServiceMiddleware(
            app, service=service, faults=faults, log=requests, error_body=error_body
        )
        server = ServerThread(wrapped, spec.tls, service)
        servers.append(server)
        server.begin()
        server.wait_ready()
        return server

    try:
        state, app, error_body = _build(spec, registry, clock)
        server = serve(spec.service, app, error_body)
        lookup_address: Address | None = None
        graph_port = 0
        if spec.service == "entra":
            listener = Listener(("127.0.0.1", 0), authkey=spec.authkey)
            lookup_address = listener.address
            threading.Thread(target=_serve_lookups, args=(state, listener), daemon=True).start()
            targets["graph"] = _graph_of(state)
            graph_port = serve("graph", *_graph_app(targets["graph"])).port
    except BaseException:
        conn.send(("failed", traceback.format_exc()))
        raise
    conn.send(("ready", server.port, lookup_address, graph_port))
    targets |= {"state": state, "child": _Helpers(requests)}
    try:
        _answer_calls(conn, targets)
    finally:
        faults.close()
        for running in servers:
            running.signal_stop()
        for running in servers:
            running.join()
        if listener is not None:
            listener.close()
        with contextlib.suppress(OSError):
            conn.send(("stopped", None))


class ServiceProcess:
    """One emulator service in a spawned process: start it, call into it, stop it."""

    def __init__(self, spec: _Spec) -> None:
        self.service = spec.service
        self._spec = spec
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None
        self._lock = threading.Lock()
        self.port = 0
        self.graph_port = 0
        """The Graph server's port (the Entra process only)."""
        self.lookup_address: Address | None = None
        self._stopping = False

    def begin(self) -> None:
        """Spawn the process (`wait_ready` waits until it listens)."""
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        self._conn = ours
        self._process = context.Process(
            target=_child_main, args=(self._spec, theirs), name=f"emulator-{self.service}"
        )
        self._process.daemon = True
        self._process.start()
        theirs.close()

    def wait_ready(self, timeout: float = _START_TIMEOUT_SECONDS) -> None:
        """Block until the service listens; raise with the child's traceback if it failed."""
        conn = self._connection()
        if not conn.poll(timeout):
            raise EmulatorProcessError(f"the {self.service} process did not start in {timeout} s")
        message = conn.recv()
        if message[0] != "ready":
            raise EmulatorProcessError(f"the {self.service} process failed:\n{message[1]}")
        _, self.port, self.lookup_address, self.graph_port = message

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def graph_url(self) -> str:
        """``https://127.0.0.1:<port>`` of the Graph server the Entra process runs beside it."""
        if not self.graph_port:
            raise RuntimeError(f"the {self.service} process serves no Graph")
        return f"https://127.0.0.1:{self.graph_port}"

    @property
    def pid(self) -> int | None:
        """The process id (None before `begin`)."""
        return self._process.pid if self._process else None

    def call(self, target: str, method: str, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        """Run ``<target>.<method>(*args, **kwargs)`` in the process and return its result.

        *target* is ``state`` (the service's state object), ``faults``, ``requests``, ``clock``
        or ``child`` (see `_Helpers`).
        """
        return self._call(target, method, args, kwargs, discard=False)

    def run(self, target: str, method: str, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        """Like `call`, for a method whose result cannot cross processes (e.g. `FaultPlan.add`)."""
        self._call(target, method, args, kwargs, discard=True)

    def _call(
        self,
        target: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        discard: bool,
    ) -> Any:  # noqa: ANN401
        conn = self._connection()
        with self._lock:
            conn.send(("call", target, method, args, kwargs, discard))
            if not conn.poll(_CALL_TIMEOUT_SECONDS):
                msg = f"{self.service}: {target}.{method} got no answer in time"
                raise EmulatorProcessError(msg)
            status, value = conn.recv()
        if status != "ok":
            raise EmulatorProcessError(
                f"{self.service}: {target}.{method} failed in the process:\n{value}"
            )
        return value

    def signal_stop(self) -> None:
        """Ask the process to stop (returns at once; `stop` waits)."""
        if self._conn is not None and not self._stopping:
            self._stopping = True
            with contextlib.suppress(OSError), self._lock:
                self._conn.send(("stop",))

    def stop(self) -> None:
        """Ask the process to stop; terminate it if it does not within a few seconds."""
        process, conn = self._process, self._conn
        if process is None or conn is None:
            return
        self.signal_stop()
        with contextlib.suppress(OSError, EOFError), self._lock:
            if conn.poll(_STOP_TIMEOUT_SECONDS):
                conn.recv()
        process.join(_STOP_TIMEOUT_SECONDS)
        if process.is_alive():
            process.terminate()
            process.join(_STOP_TIMEOUT_SECONDS)
        conn.close()
        self._process = self._conn = None
        self._stopping = False

    def _connection(self) -> Connection:
        if self._conn is None:
            raise RuntimeError(f"the {self.service} process is not running: call begin() first")
        return self._conn


class _Forward:
    """Forward attribute calls to one target of an emulator process."""

    def __init__(self, process: ServiceProcess, target: str) -> None:
        self._process = process
        self._target = target

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(self._process.call, self._target, name)


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What `emulators.scenario.seed_target` uses of `Emulators`, on one workspace of a cluster.

    Method calls on ``entra`` / ``graph`` / ``databricks`` / ``keyvault`` / ``prequel`` /
    ``clock`` run in the services' processes (``graph`` in the Entra process); so do those
    on ``devops`` / ``fivetran`` / ``github`` / ``webhook`` when the cluster runs its
    consumers (None and "" otherwise). Each process keeps its own virtual clock: ``clock``
    is Key Vault's.
    """

    entra: Any
    graph: Any
    databricks: Any
    keyvault: Any
    prequel: Any
    clock: Any
    entra_url: str
    graph_url: str
    databricks_url: str
    keyvault_url: str
    prequel_url: str
    ca_path: Path
    devops: Any = None
    fivetran: Any = None
    github: Any = None
    webhook: Any = None
    devops_url: str = ""
    fivetran_url: str = ""
    github_url: str = ""
    webhook_url: str = ""

    def identity_env(self) -> dict[str, str]:
        """No managed identity endpoint runs in a cluster: nothing to point a process at."""
        return {}

    def add_managed_identity(self, *, system: bool = False, name: str | None = None) -> str:
        """Refuse: a cluster serves no managed identity endpoint."""
        del system, name
        msg = "a ServiceCluster has no managed identity endpoint; use Emulators"
        raise NotImplementedError(msg)


class ServiceCluster:
    """Entra ID, Key Vault, Prequel and *workspaces* Databricks workspaces, a process each.

    With ``consumers=True`` also Azure DevOps, Fivetran, GitHub and the webhook receiver.
    A context manager: ``with ServiceCluster(workspaces=4) as cluster: ...``.
    """

    def __init__(self, *, workspaces: int = 1, consumers: bool = False) -> None:
        if workspaces < 1:
            raise ValueError("a cluster needs at least one Databricks workspace")
        self.workspaces = workspaces
        self.with_consumers = consumers
        self.consumers: dict[str, ServiceProcess] = {}
        self.tenant_id = str(uuid.uuid4())
        self._tls: LoopbackTLS | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self.entra: ServiceProcess | None = None
        self.keyvault: ServiceProcess | None = None
        self.prequel: ServiceProcess | None = None
        self.databricks: list[ServiceProcess] = []

    @property
    def ca_path(self) -> Path:
        """PEM file of the CA that signed every service's certificate."""
        if self._tls is None:
            raise RuntimeError("the cluster is not running: call start() first")
        return self._tls.ca_path

    def processes(self) -> list[ServiceProcess]:
        """Every running service process: Entra, Key Vault, Prequel, the workspaces, consumers."""
        first = [p for p in (self.entra, self.keyvault, self.prequel) if p is not None]
        return first + self.databricks + list(self.consumers.values())

    def start(self) -> None:
        """Start every process (Entra first: the others ask it about tokens)."""
        self._tls, self._tempdir = LoopbackTLS.create()
        authkey = secrets.token_bytes(32)
        try:
            self.entra = ServiceProcess(_Spec("entra", self._tls, self.tenant_id, authkey))
            self.entra.begin()
            self.entra.wait_ready()
            address = self.entra.lookup_address

            def spec(service: str) -> _Spec:
                return _Spec(service, self._tls_material(), self.tenant_id, authkey, address)

            self.keyvault = ServiceProcess(spec("keyvault"))
            self.prequel = ServiceProcess(spec("prequel"))
            self.databricks = [ServiceProcess(spec("databricks")) for _ in range(self.workspaces)]
            if self.with_consumers:
                self.consumers = {s: ServiceProcess(spec(s)) for s in CONSUMER_SERVICES}
            rest = [self.keyvault, self.prequel, *self.databricks, *self.consumers.values()]
            for process in rest:
                process.begin()
            for process in rest:
                process.wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every process (all at once) and delete the TLS files."""
        for process in self.processes():
            process.signal_stop()
        for process in self.processes():
            process.stop()
        self.entra = self.keyvault = self.prequel = None
        self.databricks = []
        self.consumers = {}
        if self._tempdir is not None:
            self._tempdir.cleanup()
        self._tempdir = self._tls = None

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

    def view(self, workspace: int = 0) -> ClusterView:
        """Return the `Emulators`-shaped facade on workspace number *workspace*."""
        entra, vault, prequel = (
            self._service("entra"),
            self._service("keyvault"),
            self._service("prequel"),
        )
        db = self.databricks[workspace % self.workspaces]
        consumers: dict[str, Any] = {}
        for service, process in self.consumers.items():
            consumers[service] = _Forward(process, "state")
            consumers[f"{service}_url"] = process.url
        return ClusterView(
            entra=_Forward(entra, "state"),
            graph=_Forward(entra, "graph"),
            databricks=_Forward(db, "state"),
            keyvault=_Forward(vault, "state"),
            prequel=_Forward(prequel, "state"),
            clock=_Forward(vault, "clock"),
            entra_url=entra.url,
            graph_url=entra.graph_url,
            databricks_url=db.url,
            keyvault_url=vault.url,
            prequel_url=prequel.url,
            ca_path=self.ca_path,
            **consumers,
        )

    def add_latency(self, seconds: float) -> None:
        """Delay every request to every service by *seconds* (until `clear_faults`)."""
        for process in self.processes():
            process.run(
                "faults", "add", process.service, "*", ".*", mode="delay", delay=seconds, times=-1
            )

    def clear_faults(self) -> None:
        """Remove every planned fault."""
        for process in self.processes():
            process.call("faults", "clear")

    def clear_requests(self) -> None:
        """Forget every logged request."""
        for process in self.processes():
            process.call("requests", "clear")

    def request_counts(self) -> dict[str, int]:
        """Return how many requests each service answered (or dropped) since the last clear."""
        counts = dict.fromkeys((*SERVICES, *self.consumers), 0)
        for process in self.processes():
            for service, count in process.call("child", "per_service").items():
                counts[service] = counts.get(service, 0) + count
        return counts

    def usage(self) -> dict[str, tuple[float, float]]:
        """Return each process's CPU seconds and peak RSS in MB (keys: services, databricks-N)."""
        result: dict[str, tuple[float, float]] = {}
        for process in (self.entra, self.keyvault, self.prequel):
            if process is not None:
                result[process.service] = process.call("child", "usage")
        for index, process in enumerate(self.databricks):
            result[f"databricks-{index}"] = process.call("child", "usage")
        for service, process in self.consumers.items():
            result[service] = process.call("child", "usage")
        return result

    def _service(self, service: str) -> ServiceProcess:
        process = {"entra": self.entra, "keyvault": self.keyvault, "prequel": self.prequel}[service]
        if process is None:
            raise RuntimeError("the cluster is not running: call start() first")
        return process

    def _tls_material(self) -> LoopbackTLS:
        if self._tls is None:
            raise RuntimeError("TLS material is missing")
        return self._tls

    def __repr__(self) -> str:
        state = "running" if self.entra is not None else "stopped"
        return f"ServiceCluster({state}, workspaces={self.workspaces})"
