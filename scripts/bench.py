"""Benchmark figures of docs/design.md, each printed beside its goal (not asserted).

    .venv/bin/python scripts/bench.py [--targets 1000] [--concurrency 50] [--latency 0.02]
        [--workspaces 4] [--skip-scale] [--json PATH] [--profile PATH | py-spy:PATH]
        [--log-level warning] [--retry-after] [--kv-creates 300] [--kv-others 4000] [--smoke]

The emulators run in processes of their own (`emulators.processes.ServiceCluster`: Entra ID, Key
Vault, Prequel and ``--workspaces`` Databricks workspaces, the targets spread over them), so they
share neither a GIL nor a CPU figure with the rotator. Key Vault enforces its documented service
limits (300 secret creates and 4,000 other transactions per 10 s; 429 ``Throttled`` over them,
without ``Retry-After`` unless ``--retry-after``). The calls, critical-path and no-op figures run
the rotator in this process; the scale figure runs the CLI (``python -m rotation rotate``) in a
process of its own, whose CPU time and peak RSS are its own (wait4): CPU per rotation includes the
CLI's start (imports, about 0.7 s of CPU).

Scale is judged against the real limit: the larger of the latency bound (the listing, then
⌈targets/concurrency⌉ rotations of dependent calls at ``--latency`` each) and Key Vault's throttle
bound: after the listing, in a sliding 10-s window, creates 301-600 cannot start before 10 s,
601-900 before 20 s, so 1,000 creates end no sooner than the listing plus 30 s plus one
rotation's calls (the rate, 1,000 / 300 x 10 s = 33.3 s, is printed beside it). The wall time includes the CLI's start and is shared with the
emulators' processes on the same cores (their CPU is printed).

``--profile PATH`` runs that CLI under cProfile (``py-spy:PATH``: under ``py-spy record --gil``,
``$PY_SPY`` or ``py-spy`` on the PATH; its collapsed stacks are summarised) — its CPU figures are
then the profiler's. ``--json PATH`` writes every figure as JSON. ``--smoke`` is CI's run of a few
seconds: 6 targets, 3 at a time, and a vault that admits 2 creates per 2 s, every path walked,
nothing timed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emulators.keyvault_state import ServiceLimits
from emulators.processes import ServiceCluster, ServiceProcess
from emulators.scenario import SeededTarget, rotator_env, rotator_identity, seed_target

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

KV_LIST = "/secrets"
GOAL_CRITICAL_PATH = 1.2
GOAL_SCALE = 1.3
GOAL_COLD_START = 1.3
GOAL_RSS_MB = 150
GOAL_CPU_PER_ROTATION_MS = 20
NOOP_LATENCY = 0.05


@dataclass
class Figure:
    """One figure: its value beside its goal (``ok`` None: no goal, shown for information)."""

    name: str
    value: float
    goal: str
    ok: bool | None
    unit: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """Return ``name: value (goal ...) ok|MISSED``."""
        verdict = "" if self.ok is None else (" ok" if self.ok else " MISSED")
        return f"{self.name}: {self.value:g}{self.unit} (goal {self.goal}){verdict}"


class Bench:
    """The emulator cluster, Key Vault's limits and the figures gathered so far."""

    def __init__(self, cluster: ServiceCluster, limits: ServiceLimits) -> None:
        self.cluster = cluster
        self.limits = limits
        self.figures: list[Figure] = []
        self.views = [cluster.view(i) for i in range(cluster.workspaces)]
        if cluster.keyvault is None:
            raise RuntimeError("the cluster is not running")
        self.vault: ServiceProcess = cluster.keyvault

    def add(self, figure: Figure, text: str = "") -> None:
        """Keep *figure* and print it (after *text*)."""
        self.figures.append(figure)
        print(f"{text}\n  -> {figure.line()}" if text else f"  -> {figure.line()}", flush=True)

    def seed(self, n: int) -> list[SeededTarget]:
        """Seed *n* targets, spread over the workspaces (one Prequel source each)."""
        return [seed_target(self.views[i % len(self.views)]) for i in range(n)]  # type: ignore[arg-type]

    def throttle_counts(self) -> dict[str, int]:
        """Return what Key Vault's limits admitted and refused since `set_limits`."""
        counts: dict[str, int] = self.vault.call("state", "throttle_counts")
        return counts

    def set_limits(self) -> None:
        """Enforce the limits from now on, with a fresh count."""
        self.vault.call("state", "set_limits", self.limits)


async def run_in_process(
    bench: Bench, cred: AsyncTokenCredential, seeded: list[SeededTarget], *, force: bool
) -> float:
    """Run the rotator in this process over *seeded*; return the wall time."""
    from rotation.app import open_runtime, rotate
    from rotation.backends import RetryPolicy
    from rotation.config import parse_config

    view = bench.views[0]
    config = parse_config(
        {"key_vault_url": view.keyvault_url, "targets": [s.table for s in seeded]}
    )
    start = time.perf_counter()
    async with open_runtime(
        config,
        credential=cred,
        ca_file=str(view.ca_path),
        retry=RetryPolicy(attempts=2, wait_initial=0.01, wait_max=0.02),
    ) as rt:
        reports = await rotate(rt, force=force)
    bad = [r for r in reports if not r.ok]
    if bad:
        raise SystemExit(f"{len(bad)} runs failed: {bad[0].error}")
    return time.perf_counter() - start


async def calls_and_critical_path(bench: Bench, cred: AsyncTokenCredential, lat: float) -> None:
    """Count one forced rotation's and one no-op run's calls; time a rotation at *lat* per call."""
    cluster = bench.cluster
    seeded = bench.seed(1)
    await run_in_process(bench, cred, seeded, force=False)  # warm: challenge and token cached
    for title, force in (("forced rotation (with revoke)", True), ("no-op run (not due)", False)):
        cluster.clear_requests()
        await run_in_process(bench, cred, seeded, force=force)
        counts = cluster.request_counts()
        total = sum(counts.values())
        goal = "the steps' calls" if force else "1 (the listing)"
        figure = Figure(f"calls, {title}", total, goal, None if force else total == 1)
        figure.detail = counts
        bench.add(figure, f"calls, {title}: {counts}")
    cluster.clear_requests()
    cluster.add_latency(lat)
    wall = await run_in_process(bench, cred, seeded, force=True)
    cluster.clear_faults()
    trips = sum(cluster.request_counts().values())
    ideal = trips * lat
    ratio = wall / ideal
    figure = Figure("critical path ratio", round(ratio, 3), f"<= {GOAL_CRITICAL_PATH}", None)
    figure.ok = ratio <= GOAL_CRITICAL_PATH
    figure.detail = {"round_trips": trips, "latency_s": lat, "ideal_s": ideal, "wall_s": wall}
    bench.add(
        figure,
        f"critical path: {trips} dependent round trips x {lat * 1000:.0f} ms = {ideal:.3f} s"
        f" ideal; wall {wall:.3f} s",
    )


async def noop_listing(bench: Bench, cred: AsyncTokenCredential, n: int) -> None:
    """Run over *n* targets that are all current and not due: only the vault's listing."""
    seeded = bench.seed(n)
    vault = bench.views[0].keyvault
    now = int(bench.views[0].clock.now())
    for s in seeded:  # a current, not-due version for each, written directly
        vault.set_secret(
            s.secret_name,
            "x" * 8,
            exp=now + 80 * 86_400,
            tags={"managed-by": "pat-rotator", "stage": "current", "token-id": "0"},
        )
    bench.cluster.clear_requests()
    await run_in_process(bench, cred, seeded, force=False)
    counts = bench.cluster.request_counts()
    in_vault = len(vault.names())
    want = math.ceil(in_vault / 25)
    calls = sum(counts.values())
    figure = Figure("no-op listing calls", calls, f"== ceil(secrets/25) = {want}", calls == want)
    figure.detail = {"targets": n, "secrets": in_vault, **counts}
    bench.add(figure, f"no-op run over {n} targets ({in_vault} secrets in the vault): {counts}")


def run_child(args: list[str], env: dict[str, str], deadline: float) -> tuple[int, str, str, Any]:
    """Run a child process; return its exit code, stdout, stderr and its own rusage (wait4).

    A child still running after *deadline* seconds is killed (SIGKILL: its exit code is -9) and
    its stderr so far printed, so that a stuck run ends with what it said rather than never.
    """
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out: dict[str, str] = {}

    def drain(name: str, stream: IO[str] | None) -> None:
        out[name] = stream.read() if stream else ""

    readers = [
        threading.Thread(target=drain, args=("out", proc.stdout)),
        threading.Thread(target=drain, args=("err", proc.stderr)),
    ]
    for r in readers:
        r.start()
    watchdog = threading.Timer(deadline, proc.kill)
    watchdog.start()
    _, status, usage = os.wait4(proc.pid, 0)
    watchdog.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for r in readers:
        r.join()
    if proc.returncode == -signal.SIGKILL:
        print(f"the child was killed after {deadline:.0f} s:\n{out.get('err', '')[-4000:]}")
    return proc.returncode, out.get("out", ""), out.get("err", ""), usage


TICKS = os.sysconf("SC_CLK_TCK")


def machine_ticks() -> list[int]:
    """Return the machine's CPU time so far by kind (``/proc/stat``: user, nice, system, ...)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0]
    except OSError:
        return [0] * 8
    return [int(x) for x in first.split()[1:9]]


def cli_command(profile: str | None, log_level: str) -> list[str]:
    """Return ``python -m rotation rotate --json``, under the profiler *profile* names."""
    python = [sys.executable]
    if profile and profile.startswith("py-spy:"):
        spy = os.environ.get("PY_SPY") or shutil.which("py-spy") or "py-spy"
        out = profile.removeprefix("py-spy:")
        record = [spy, "record", "--gil", "--format", "raw", "--rate", "250", "-o", out, "--"]
        python = [*record, *python]
    elif profile:
        python += ["-m", "cProfile", "-o", profile]
    return [*python, "-m", "rotation", "--log-level", log_level, "rotate", "--json"]


@dataclass
class ScaleRun:
    """What one run of the CLI over the scale targets did."""

    code: int
    reports: list[dict[str, Any]]
    wall: float
    cpu: float
    rss_mb: float
    emulators_cpu: float
    emulators_cpu_by_process: dict[str, float]
    machine_cpu: float
    """CPU seconds every process of the machine used meanwhile (others' work included)."""
    steal: float
    """CPU seconds the hypervisor took from this machine meanwhile."""


def run_scale_cli(  # noqa: PLR0917 - the bench's knobs, in one place
    bench: Bench, n: int, conc: int, lat: float, profile: str | None, log_level: str
) -> ScaleRun:
    """Seed *n* targets and bootstrap them with the CLI in its own process."""
    cluster = bench.cluster
    started = time.perf_counter()
    seeded = bench.seed(n)
    took = time.perf_counter() - started
    print(f"(seeded {n} targets over {cluster.workspaces} workspace(s) in {took:.1f} s)")
    view = bench.views[0]
    table = {"key_vault_url": view.keyvault_url, "concurrency": conc}
    table["targets"] = [s.table for s in seeded]
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        config = Path(workdir) / "config.json"
        config.write_text(json.dumps(table))
        env = {**os.environ, **rotator_env(view, str(config))}  # type: ignore[arg-type]
        env.pop("AzureWebJobsStorage", None)
        cluster.clear_requests()
        bench.set_limits()
        cluster.add_latency(lat)
        before, machine = cluster.usage(), machine_ticks()
        start = time.perf_counter()
        deadline = 120 + 2 * n  # seconds: generous (1,000 targets take under a minute)
        code, stdout, stderr, usage = run_child(cli_command(profile, log_level), env, deadline)
        wall = time.perf_counter() - start
        after, machine = (
            cluster.usage(),
            [b - a for a, b in zip(machine, machine_ticks(), strict=True)],
        )
        cluster.clear_faults()
    report = "\n".join(x for x in stdout.splitlines() if not x.startswith("py-spy>"))
    try:
        reports = json.loads(report)["targets"]
    except (ValueError, KeyError):
        raise SystemExit(f"the CLI answered no report (exit {code}):\n{stderr[-4000:]}") from None
    if code != 0:
        print(stderr[-4000:], file=sys.stderr)
    return ScaleRun(
        code=code,
        reports=reports,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mb=usage.ru_maxrss / 1024,
        emulators_cpu=sum(after[k][0] - before[k][0] for k in after),
        emulators_cpu_by_process={k: round(after[k][0] - before[k][0], 2) for k in after},
        machine_cpu=sum(machine[:3] + machine[5:7]) / TICKS,
        steal=machine[7] / TICKS,
    )


def throttle_floor(kv: dict[str, int], limits: ServiceLimits, rotation_latency: float) -> float:
    """Return the earliest the admitted requests can be done in one vault, in seconds.

    In a sliding window of ``window`` seconds, requests ``k * limit + 1`` to ``(k + 1) * limit``
    of a kind cannot be admitted before ``k * window``: the last of them waits for the last
    window it needs, then its rotation still has its calls to make (*rotation_latency*, an
    upper bound on what follows the last create). Below the limits, nothing waits (0).
    """
    windows = max(
        math.ceil(kv["creates"] / limits.creates) - 1 if limits.creates else 0,
        math.ceil(kv["others"] / limits.others) - 1 if limits.others else 0,
    )
    return windows * limits.window + rotation_latency if windows > 0 else 0.0


def scale(  # noqa: PLR0917 - the bench's knobs, in one place
    bench: Bench, n: int, conc: int, lat: float, profile: str | None, log_level: str = "warning"
) -> None:
    """Bootstrap *n* targets with the CLI; judge the wall time against the real limit."""
    run = run_scale_cli(bench, n, conc, lat, profile, log_level)
    outcomes = Counter(t["outcome"] for t in run.reports)
    failures = n - outcomes["rotated"]
    counts = bench.cluster.request_counts()
    calls = sum(counts.values())
    kv = bench.throttle_counts()
    listing = bench.vault.call("requests", "count", "keyvault", "GET", KV_LIST)
    per_rotation = (calls - listing - kv["throttled"]) / n
    latency_bound = (listing + math.ceil(n / conc) * per_rotation) * lat
    limits = bench.limits
    throttle_bound = listing * lat + throttle_floor(kv, limits, per_rotation * lat)
    rate_bound = max(kv["creates"] / limits.creates, kv["others"] / limits.others) * limits.window
    ideal = max(latency_bound, throttle_bound)
    ratio = run.wall / ideal
    print(
        f"scale: {n} bootstrap rotations by the CLI, concurrency {conc}, {lat * 1000:.0f} ms per"
        f" call, {bench.cluster.workspaces} workspace(s): {dict(outcomes)}; {calls} calls {counts}"
        f" ({listing} listing, {kv['throttled']} answered 429, {per_rotation:.1f} per rotation);"
        f" Key Vault admitted {kv['creates']} creates and {kv['others']} other transactions."
        f"\n  latency bound {latency_bound:.1f} s, throttle bound {throttle_bound:.1f} s (at the"
        f" limit's rate: {rate_bound:.1f} s) -> real"
        f" limit {ideal:.1f} s; wall {run.wall:.1f} s (incl. the CLI's start); rotator CPU"
        f" {run.cpu:.1f} s, peak RSS {run.rss_mb:.0f} MB; the emulators' processes used"
        f" {run.emulators_cpu:.1f} s of CPU {run.emulators_cpu_by_process}; the machine's"
        f" {os.cpu_count()} CPUs were busy {run.machine_cpu:.1f} s in all (steal {run.steal:.1f} s)",
        flush=True,
    )
    if profile:
        print("  (profiled: the CPU figures below are the profiler's, not the rotator's)")
    detail = {
        "targets": n,
        "concurrency": conc,
        "latency_s": lat,
        "workspaces": bench.cluster.workspaces,
        "exit_code": run.code,
        "outcomes": dict(outcomes),
        "calls": calls,
        "calls_by_service": counts,
        "listing_calls": listing,
        "calls_per_rotation": round(per_rotation, 2),
        "key_vault": kv,
        "limits": asdict(limits),
        "latency_bound_s": round(latency_bound, 2),
        "throttle_bound_s": round(throttle_bound, 2),
        "throttle_rate_s": round(rate_bound, 2),
        "real_limit_s": round(ideal, 2),
        "wall_s": round(run.wall, 2),
        "rotator_cpu_s": round(run.cpu, 2),
        "rotator_peak_rss_mb": round(run.rss_mb, 1),
        "emulators_cpu_s": round(run.emulators_cpu, 2),
        "emulators_cpu_s_by_process": run.emulators_cpu_by_process,
        "machine_cpu_s": round(run.machine_cpu, 2),
        "machine_steal_s": round(run.steal, 2),
        "cpus": os.cpu_count(),
        "profiled": bool(profile),
        "log_level": log_level,
    }
    cpu_ms = run.cpu / n * 1000
    bench.add(
        Figure("scale wall / real limit", round(ratio, 3), f"<= {GOAL_SCALE}", ratio <= GOAL_SCALE)
    )
    bench.figures[-1].detail = detail
    bench.add(Figure("scale failures", failures, "== 0", failures == 0))
    rss_ok = run.rss_mb < GOAL_RSS_MB
    bench.add(Figure("rotator peak RSS", round(run.rss_mb, 1), f"< {GOAL_RSS_MB}", rss_ok, " MB"))
    cpu_ok = cpu_ms <= GOAL_CPU_PER_ROTATION_MS
    goal = f"<= {GOAL_CPU_PER_ROTATION_MS}"
    bench.add(Figure("rotator CPU per rotation", round(cpu_ms, 2), goal, cpu_ok, " ms"))
    per_call = round(run.cpu / max(1, calls) * 1000, 3)
    bench.add(Figure("rotator CPU per call", per_call, "-", None, " ms"))
    if profile:
        print_profile(profile)


def print_profile(path: str, top: int = 30) -> None:
    """Print the profile's top entries (cProfile's, or py-spy's collapsed stacks)."""
    if path.startswith("py-spy:"):
        print_py_spy(path.removeprefix("py-spy:"), top)
        return
    stats = pstats.Stats(path)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def _frame(text: str) -> str:
    """Shorten ``function (path/file.py:line)`` to ``function (file.py)``."""
    name, _, where = text.partition(" (")
    return f"{name} ({where.split(':')[0].rsplit('/', 1)[-1]})" if where else name


def print_py_spy(path: str, top: int) -> None:
    """Summarise py-spy's collapsed stacks: share of samples per function, self and inclusive."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"py-spy: {total} samples (GIL held)")
    print("  self:")
    for frame, count in own.most_common(top):
        print(f"    {count / total:6.1%}  {frame}")
    print("  inclusive:")
    for frame, count in inclusive.most_common(top * 2):
        print(f"    {count / total:6.1%}  {frame}")


def cold_start(bench: list[Figure], runs: int) -> None:
    """Compare importing function_app with importing azure.functions alone, in fresh processes."""

    def once(module: str) -> float:
        code = f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return float(done.stdout)

    once("function_app")  # warm the file cache
    pairs = [(once("azure.functions"), once("function_app")) for _ in range(runs)]
    base = statistics.median(p[0] for p in pairs)
    app = statistics.median(p[1] for p in pairs)
    ratio = app / base
    figure = Figure("cold start ratio", round(ratio, 3), f"<= {GOAL_COLD_START}", None)
    figure.ok = ratio <= GOAL_COLD_START
    figure.detail = {"azure_functions_ms": base * 1000, "function_app_ms": app * 1000}
    print(
        f"cold start: import azure.functions {base * 1000:.1f} ms, import function_app"
        f" {app * 1000:.1f} ms (medians of {runs} fresh processes)\n  -> {figure.line()}",
        flush=True,
    )
    bench.append(figure)


def parse_args() -> argparse.Namespace:
    """Parse the command line (``--smoke`` overrides the sizes)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--workspaces", type=int, default=4, help="Databricks workspaces")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--json", dest="json_path", help="write the figures to this file")
    parser.add_argument("--profile", help="profile the scale CLI: PATH (cProfile), py-spy:PATH")
    parser.add_argument("--retry-after", action="store_true", help="429s carry Retry-After")
    parser.add_argument("--kv-creates", type=int, default=300, help="creates per window")
    parser.add_argument("--kv-others", type=int, default=4000, help="other calls per window")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning"],
        help="the scale CLI's --log-level (the Function App logs rotation at info)",
    )
    parser.add_argument("--smoke", action="store_true", help="CI: tiny numbers, 2 creates/2 s")
    args = parser.parse_args()
    args.limits = ServiceLimits(
        creates=args.kv_creates, others=args.kv_others, retry_after=args.retry_after
    )
    args.cold_runs = 7
    if args.smoke:
        args.targets, args.concurrency, args.latency, args.workspaces = 6, 3, 0.005, 2
        # 3 targets create at once against 2 creates per 2 s: the throttle is met every time
        args.limits = ServiceLimits(creates=2, others=400, window=2.0, retry_after=args.retry_after)
        args.cold_runs = 1
    return args


async def main() -> int:
    """Print (and write) every figure."""
    args = parse_args()
    figures: list[Figure] = []
    cold_start(figures, args.cold_runs)
    from azure.identity.aio import ClientSecretCredential

    with ServiceCluster(workspaces=args.workspaces) as cluster:
        bench = Bench(cluster, args.limits)  # the limits apply to the scale run only
        bench.figures = figures
        view = bench.views[0]
        tenant, client, secret = rotator_identity(view)  # type: ignore[arg-type]
        async with ClientSecretCredential(
            tenant, client, secret, authority=view.entra_url, connection_verify=str(view.ca_path)
        ) as cred:
            await calls_and_critical_path(bench, cred, NOOP_LATENCY)
            await noop_listing(bench, cred, args.targets)
        if not args.skip_scale:
            scale(bench, args.targets, args.concurrency, args.latency, args.profile, args.log_level)
    if args.json_path:
        table = {"figures": [asdict(f) for f in bench.figures]}
        await asyncio.to_thread(Path(args.json_path).write_text, json.dumps(table, indent=2))
    print("figures: " + "; ".join(f.line() for f in bench.figures))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
