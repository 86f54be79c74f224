"""Benchmark figures of DESIGN.md, printed (not asserted): calls, critical path, scale, cold start.

    .venv/bin/python scripts/bench.py [--targets 1000] [--concurrency 50] [--latency 0.02]

Everything runs against the local emulators in this process (they share the CPU and the RSS
figure with the rotator: the figures are upper bounds of the rotator's own cost).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azure.identity.aio import ClientSecretCredential

from emulators.harness import Emulators
from emulators.scenario import rotator_env, rotator_identity, seed_target
from rotation.clients import open_runtime
from rotation.config import parse_config
from rotation.retry import RetryPolicy
from rotation.service import rotate

SERVICES = ("entra", "databricks", "keyvault", "prequel")


def per_service(emu: Emulators) -> dict[str, int]:
    counts = Counter(e.service for e in emu.requests.entries())
    return {s: counts.get(s, 0) for s in SERVICES}


async def run(emu: Emulators, cred: ClientSecretCredential, seeded: list, **kw: object) -> float:
    table = {"key_vault_url": emu.keyvault_url, "targets": [s.table for s in seeded]}
    table |= {k: v for k, v in kw.items() if k == "concurrency"}
    config = parse_config(table)
    start = time.perf_counter()
    async with open_runtime(
        config,
        credential=cred,
        ca_file=str(emu.ca_path),
        clock=emu.clock.now,
        retry=RetryPolicy(attempts=2, wait_initial=0.01, wait_max=0.02),
    ) as rt:
        reports = await rotate(rt, force=bool(kw.get("force")))
    bad = [r for r in reports if not r.ok]
    if bad:
        raise SystemExit(f"{len(bad)} runs failed: {bad[0].error}")
    return time.perf_counter() - start


def latency(emu: Emulators, seconds: float) -> None:
    for service in SERVICES:
        emu.faults.add(service, "*", ".*", mode="delay", delay=seconds, times=-1)


async def calls_and_critical_path(emu: Emulators, cred: ClientSecretCredential, lat: float) -> None:
    seeded = [seed_target(emu)]
    await run(emu, cred, seeded)  # warm: challenge cached, Entra token cached
    for title, force in (("forced rotation (with revoke)", True), ("no-op run (not due)", False)):
        emu.requests.clear()
        await run(emu, cred, seeded, force=force)
        counts = per_service(emu)
        print(f"calls, {title}: {counts} total {sum(counts.values())}")
    emu.requests.clear()
    latency(emu, lat)
    wall = await run(emu, cred, seeded, force=True)
    emu.faults.clear()
    trips = sum(per_service(emu).values())
    ideal = trips * lat
    print(
        f"critical path: {trips} dependent round trips x {lat * 1000:.0f} ms = {ideal:.3f} s ideal;"
        f" wall {wall:.3f} s; ratio {wall / ideal:.2f} (goal <= 1.2)"
    )


async def noop_scale(emu: Emulators, cred: ClientSecretCredential, n: int) -> None:
    seeded = [seed_target(emu) for _ in range(n)]
    for s in seeded:  # a current, not-due version for each, written directly
        emu.keyvault.set_secret(
            s.secret_name,
            "x" * 8,
            exp=int(emu.clock.now()) + 80 * 86_400,
            tags={"managed-by": "pat-rotator", "stage": "current", "token-id": "0"},
        )
    emu.requests.clear()
    await run(emu, cred, seeded)
    counts = per_service(emu)
    total_secrets = len(emu.keyvault.names())
    print(
        f"no-op run over {n} targets ({total_secrets} secrets in the vault): {counts};"
        f" ceil(secrets/25) = {math.ceil(total_secrets / 25)}"
    )


async def scale(emu: Emulators, n: int, conc: int, lat: float) -> None:
    """Bootstrap *n* targets with the CLI in its own process (its RSS and CPU are its own)."""
    seeded = [seed_target(emu, consumers=("prequel-source",)) for _ in range(n)]
    table = {
        "key_vault_url": emu.keyvault_url,
        "concurrency": conc,
        "targets": [s.table for s in seeded],
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    (workdir / "config.json").write_text(json.dumps(table))
    env = {**os.environ, **rotator_env(emu, str(workdir / "config.json"))}
    env.pop("AzureWebJobsStorage", None)
    emu.requests.clear()
    latency(emu, lat)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "rotation", "rotate", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    emu.faults.clear()
    shutil.rmtree(workdir, ignore_errors=True)
    outcomes = Counter(
        t["outcome"] for t in json.loads(done.stdout or '{"targets": []}')["targets"]
    )
    calls = sum(per_service(emu).values())
    listing = emu.requests.count("keyvault", "GET", "/secrets")
    per_rotation = (calls - listing) / n
    ideal = (listing + math.ceil(n / conc) * per_rotation) * lat
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss = usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    print(
        f"scale: {n} bootstrap rotations by the CLI, concurrency {conc}, {lat * 1000:.0f} ms per"
        f" call: {dict(outcomes)}, {calls} calls ({listing} listing, {per_rotation:.1f} per rotation), wall {wall:.1f} s"
        f" (incl. ~1 s interpreter start), ideal {ideal:.1f} s, ratio {wall / ideal:.2f}"
        f" (goal <= 1.2); rotator CPU {cpu:.1f} s (the rest of the wall time is the emulators'"
        f" single GIL serving {calls / wall:.0f} calls/s); rotator peak RSS {rss:.0f} MB"
        " (goal < 150 MB)"
    )


def cold_start(runs: int = 7) -> None:
    def once(module: str) -> float:
        code = f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"
        return float(
            subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout
        )

    once("function_app")  # warm the file cache
    pairs = [(once("azure.functions"), once("function_app")) for _ in range(runs)]
    base = statistics.median(p[0] for p in pairs)
    app = statistics.median(p[1] for p in pairs)
    print(
        f"cold start: import azure.functions {base * 1000:.1f} ms, import function_app"
        f" {app * 1000:.1f} ms (medians of {runs} fresh processes); ratio {app / base:.2f} (goal <= 1.3)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    cold_start()
    with Emulators() as emu:
        tenant, client, secret = rotator_identity(emu)
        async with ClientSecretCredential(
            tenant, client, secret, authority=emu.entra_url, connection_verify=str(emu.ca_path)
        ) as cred:
            await calls_and_critical_path(emu, cred, 0.05)
            await noop_scale(emu, cred, args.targets)
            if not args.skip_scale:
                await scale(emu, args.targets, args.concurrency, args.latency)


if __name__ == "__main__":
    asyncio.run(main())
