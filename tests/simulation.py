"""A long-horizon simulation: the real engine and triggers against the emulators, years of time.

The rotator's own code runs unchanged — the timer's ``needing_work`` + ``rotate`` (above the
fan-out threshold, one ``run_target`` per queue message with the host's five attempts), Key Vault
events through ``rotation.app.triggers._on_expiry``, manual rotations and dry runs through
``run_target`` — through the real Azure SDKs and httpx, against emulators of its own (its vault
lists only its targets; its clock is its own and the simulation moves it).

The world: ``per_kind`` targets of every principal kind (Entra client secret, Databricks OAuth,
Databricks on-behalf-of) with every consumer shape (a Prequel source, destination or import
source, an Azure DevOps variable group, a Fivetran destination, a GitHub Actions secret, a webhook
receiver, several at once, Key Vault only) and five timings (rotation every 60, 150, 10 and 15 days;
grace periods of 24 h and 2 h). They were bootstrapped 0-88 days before day 0, so PATs of every
age exist from the start. Consumers use their PAT at every tick unless they stopped.

The schedule: outside events and triggers are drawn up front from ``random.Random(seed)`` (the
printed seed; ``SIMULATION_SEED`` or ``--seed`` replays it); what the world does in reply — Key
Vault's own expiry events for each new version, Event Grid's redeliveries, an owner's next
credential — comes from a second stream seeded from it. Every kind of event happens at least once
in any horizon:

- the timer every ``timer_hours``;
- an admin revoking the current PAT, the previous one within its grace period, or the pending PAT
  a failed run left; CAN_USE removed (which revokes the principal's PATs) and restored 1-48 h
  later; a consumer that stops using its PAT (Databricks revokes a PAT unused for 90 days; only
  targets rotating less often than that can lose theirs);
- every credential expiring: an Entra client secret or a Databricks OAuth secret is rotated by
  the principal itself (lifetimes of 60, 180, 365 and 730 days; nobody replaces one by hand: see
  ``tests/sim_credentials.py``), while its rights are sometimes taken away for 1-72 h and the
  tenant sometimes caps a new secret's lifetime — the credential in Key Vault must authenticate at
  every check and no run may fail for its expiry; an admin PAT (on-behalf-of) is replaced by a
  person up to 28 days early or up to a week late (the rotator warns under 30 days and fails runs
  under 7); at its expiry a credential really stops working;
- outages of Key Vault and of every consumer service (every call answered 503 for 30 minutes to
  30 hours);
- crashes at random steps: a fault on one call of a run (503 for the whole run, 500 once, a
  dropped connection, an answer lost after the server did the work) or the process killed while
  a call is in flight, before or after the server carried it out — then a fresh process;
- Key Vault events naming the latest version, an older one or none, and Key Vault's near-expiry
  and expired events for every version (and for the credentials), delivered at least once
  (duplicates; a delivery that raised is redelivered for 24 h); manual rotations; dry runs.

Before every run the simulation notes which PATs died since it last looked; after every tick and
every other run it checks:

- I1 for every consumer and I2 for the latest enabled version: a dead PAT there is a violation
  unless an outside event killed it (an admin, CAN_USE removed, 90 days unused); then the target
  is *broken* from that moment until it holds live PATs again;
- every break is healed within ``heal_bound`` of the moment healing became possible (the later of
  the revocation and the end of every blocker: CAN_USE missing, a credential expired and not yet
  replaced, an outage the heal needs, a crash);
- no target stays broken longer than ``heal_bound`` without a failed run (or a failed timer)
  saying so at every tick after that;
- I3 for every target whose last run succeeded (one live rotator PAT, two within a grace period,
  no orphan, nothing pending); at every tick at most ``MAX_LIVE`` live rotator PATs per target
  (current, previous within grace, pending, one whose create answer was lost) — nothing leaks
  towards the 600-token quota;
- I4: every log record (all loggers, DEBUG) and every report, tick by tick, is scanned for every
  secret the emulators issued (``tests.hygiene.find``);
- a dry run writes nothing; an event naming a replaced version changes nothing; an event naming no
  version forces nothing; an idle tick costs one paged vault listing (⌈secrets/25⌉ list calls)
  and nothing else.

The bound: a PAT that died is found by the health check, which a timer run makes once
``health_check_hours`` less 15 minutes have passed since the last one. With checks as often as the
timer (the product's default, 6 h) the bound is one timer period. The short form gives the
simulated targets 24 h checks — a check is a token list and a tag write per target, and 30
targets checked 4 times a day would dominate CI time — so its bound is 24 h; the printed line
says which.

Records that lie (``tests.sim_records``): a second deployment minting PATs for the same target
names, people's own PATs, tags edited by hand (``token-id``, ``previous-token-id``, ``stage``, a
forged pending version) and runs that lose their lock mid-run while another rotates; after every
tick and run, I6: no PAT outside a target's own set was ever revoked.

Limits: the emulators cannot delete a Databricks OAuth secret (one past its ``exp`` keeps working;
the rotator still fails those runs); the lock is the simulation's own (``SimLock``, exclusive and
losable like a blob lease; no Azurite); the CLI is not driven (it runs on the real clock, not the
simulated one).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import math
import os
import random
import threading
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emulators.databricks_model import INACTIVITY_LIMIT_MS
from emulators.harness import Emulators
from rotation import errors
from rotation.app import EXPIRED, NEAR_EXPIRY, needing_work, parse_event, rotate
from rotation.app.triggers import MAX_DEQUEUE, _on_expiry
from rotation.engine import HEALTH_SLACK, Outcome, run_target
from rotation.state import parse_comment
from tests import hygiene
from tests.invariants import held_pat, rotator_tokens, violations
from tests.sim_credentials import (
    ROTATING,
    expire_seeded,
    seed_rights,
    set_rights,
    stored_credential_works,
)
from tests.sim_credentials import timing as credential_timing
from tests.sim_records import EDITS, SimLock, mint_bystanders, not_its_own, persons_pat
from tests.world import World

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Iterator

    from emulators.faults import Fault
    from emulators.scenario import SeededTarget
    from rotation.config import Target
    from rotation.engine import Runtime, TargetReport

__all__ = ["DEFAULT_SEED", "Result", "Settings", "record", "simulate", "summary"]

HOUR = 3_600.0
DAY = 86_400.0
DEFAULT_SEED = 20_260_611
HISTORY_DAYS = 88
INACTIVITY = INACTIVITY_LIMIT_MS / 1000
INACTIVE = "unused for 90 days"
PAUSED = "consumer stopped using its PAT"
NO_CAN_USE = "CAN_USE removed"
EXPIRED_CREDENTIAL = "credential expired"
RIGHTS_OFF = "credential rotation rights removed and restored"
TENANT_POLICY = "tenant secret lifetime policy set and lifted"
FANOUT_THRESHOLD = 20  # ROTATION_FANOUT_THRESHOLD's default
KV_PAGE = 25
MAX_LIVE = 4
"""Live rotator PATs one target may have at a tick: current, previous (grace), pending, and one
whose create answer was lost (swept by the next run)."""

LATEST = "the latest enabled version"
KINDS = ("entra-client-secret", "databricks-oauth", "databricks-obo")
CONSUMERS: tuple[tuple[str, ...], ...] = (
    ("prequel-source",),
    ("prequel-destination",),
    ("prequel-import-source", "azure-devops-variable-group"),
    ("prequel-source", "prequel-destination", "fivetran-destination"),
    (),
    (
        "prequel-source",
        "azure-devops-variable-group",
        "fivetran-destination",
        "github-actions-secret",
        "webhook",
    ),
    ("github-actions-secret", "webhook"),
)
SERVICE_OF = {
    "prequel-source": "prequel",
    "prequel-destination": "prequel",
    "prequel-import-source": "prequel",
    "azure-devops-variable-group": "devops",
    "fivetran-destination": "fivetran",
    "github-actions-secret": "github",
    "webhook": "webhook",
}
"""The emulator service behind each consumer kind (its outages, its crash points)."""
OUTAGE_EVERY_DAYS = {
    "prequel": 12.0,
    "devops": 30.0,
    "fivetran": 30.0,
    "github": 30.0,
    "webhook": 30.0,
}
"""How often each consumer service is down, on average (each at least once in any horizon)."""
TIMINGS: dict[str, dict[str, float]] = {
    "60-day": {"lifetime_days": 90, "rotate_before_days": 30},
    "60-day, 24 h grace": {"lifetime_days": 90, "rotate_before_days": 30, "grace_period_hours": 24},
    "150-day": {"lifetime_days": 180, "rotate_before_days": 30},
    "10-day, 2 h grace": {"lifetime_days": 40, "rotate_before_days": 30, "grace_period_hours": 2},
    "15-day": {"lifetime_days": 45, "rotate_before_days": 30},
}
# (consumers, timing) of the i-th target of each kind, cycled.
LAYOUT = (
    (0, "60-day"),
    (1, "60-day, 24 h grace"),
    (2, "150-day"),
    (3, "10-day, 2 h grace"),
    (4, "60-day"),
    (6, "15-day"),
    (1, "150-day"),
    (5, "60-day"),
    (0, "60-day, 24 h grace"),
    (4, "10-day, 2 h grace"),
)


# --- the session's figure --------------------------------------------------------------------

_results: list[Result] = []


def record(result: Result) -> None:
    """Remember a finished simulation for the end-of-session line."""
    _results.append(result)


def summary() -> str | None:
    """Return the line of every simulation run in this session, or None when none ran."""
    return "\n".join(r.line() for r in _results) or None


# --- settings and result ----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How long, how big, how often; every figure of the printed line derives from these."""

    days: int = 60
    seed: int = DEFAULT_SEED
    per_kind: int = 10
    timer_hours: float = 6.0
    health_check_hours: float = 24.0
    random_events: bool = True
    """Draw the schedule from the seed (False: only the events a script adds, for self-tests)."""

    @classmethod
    def from_env(cls) -> Settings:
        """Read ``SIMULATION_DAYS``, ``SIMULATION_SEED``, ``SIMULATION_TARGETS_PER_KIND`` and
        ``SIMULATION_HEALTH_CHECK_HOURS`` (defaults: the short form)."""
        env = os.environ
        return cls(
            days=int(env.get("SIMULATION_DAYS", cls.days)),
            seed=int(env.get("SIMULATION_SEED", cls.seed)),
            per_kind=int(env.get("SIMULATION_TARGETS_PER_KIND", cls.per_kind)),
            health_check_hours=float(
                env.get("SIMULATION_HEALTH_CHECK_HOURS", cls.health_check_hours)
            ),
        )

    @property
    def timer(self) -> float:
        """Seconds between timer runs."""
        return self.timer_hours * HOUR

    @property
    def heal_bound(self) -> float:
        """Seconds within which a break must be healed once healing is possible.

        The health check is due on the first timer run at least ``health_check_hours`` less the
        15-minute slack after the last one; a blocker that ends lets the next timer run heal.
        """
        checks = math.ceil((self.health_check_hours * HOUR - HEALTH_SLACK) / self.timer)
        return max(1, checks) * self.timer


@dataclass
class Result:
    """What a simulation saw: its figures, its violations (in words) and its breakdown."""

    settings: Settings
    targets: int = 0
    outside: Counter[str] = field(default_factory=Counter)
    triggers: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    heals: int = 0
    worst_heal: float = 0.0
    """Seconds from the moment healing became possible to the heal (the bounded figure)."""
    worst_heal_story: str = ""
    """Which break took the longest to heal, and the target's last runs then."""
    worst_break: float = 0.0
    """Seconds from the revocation to the heal, blockers included."""
    revocations: int = 0
    """PATs the rotator revoked, each judged by I6 (of its target's own set)."""
    bystanders: int = 0
    """PATs of people, another deployment and another principal beside the targets' own."""
    idle_ticks: int = 0
    idle_cost: Counter[str] = field(default_factory=Counter)
    """Calls per idle tick ("keyvault GET /secrets x4"), counted over the idle ticks."""
    idle_seconds: float = 0.0
    """Wall time of the idle ticks' timer runs, summed."""
    vault_secrets: int = 0
    scanned: int = 0
    """Log records and reports scanned for issued secrets (I4)."""
    secrets: int = 0
    """Secret values the emulators issued."""
    wall_seconds: float = 0.0
    credentials: Counter[str] = field(default_factory=Counter)
    """What the credential phase did, of the targets that rotate their own credential."""

    @property
    def outside_events(self) -> int:
        """Return how many outside events were applied."""
        return sum(self.outside.values())

    def line(self) -> str:
        """Return the printed line."""
        s = self.settings
        return (
            f"simulation: {s.days} days, {self.targets} targets, {self.outside_events} outside "
            f"events, {len(self.violations)} invariant violations (I6: {self.revocations} "
            f"revocations, each of its own target's PATs; {self.bystanders} others' PATs beside "
            "them), worst time to heal "
            f"{self.worst_heal / HOUR:.1f} h (seed {s.seed}; timer every {s.timer_hours:g} h, "
            f"health check every {s.health_check_hours:g} h: heal bound "
            f"{s.heal_bound / HOUR:g} h once healing is possible; {self.wall_seconds:.0f} s)"
        )

    def details(self) -> list[str]:
        """Return the breakdown: events, triggers, outcomes, heals, idle cost."""

        def fmt(counter: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"

        return [
            f"outside events: {fmt(self.outside)}",
            f"triggers: {fmt(self.triggers)}",
            f"run outcomes: {fmt(self.outcomes)}",
            (
                f"breaks healed: {self.heals}; worst from healing possible "
                f"{self.worst_heal / HOUR:.1f} h, from the revocation {self.worst_break / HOUR:.1f} h"
            ),
            f"the slowest heal: {self.worst_heal_story or 'none'}",
            (
                f"idle ticks: {self.idle_ticks}, each costing {fmt(self.idle_cost)} "
                f"(one paged listing of {self.vault_secrets} secrets), "
                f"{1000 * self.idle_seconds / max(1, self.idle_ticks):.0f} ms on average"
            ),
            f"credential phase (self-rotating principals): {fmt(self.credentials)}",
            (
                f"I4: {self.scanned} log records and reports scanned, tick by tick, for "
                f"{self.secrets} issued secrets"
            ),
        ]


# --- crash points -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CrashPoint:
    """A call a run makes; templates: {pat} {cred} {key} {tenant}."""

    label: str
    service: str
    method: str
    path: str
    kinds: tuple[str, ...] = KINDS
    max_skip: int = 0


ME = "/api/2.0/preview/scim/v2/Me"
SELF = ("entra-client-secret", "databricks-oauth")
CRASH_POINTS = (
    CrashPoint("list the vault", "keyvault", "GET", "/secrets"),
    CrashPoint("read the latest version", "keyvault", "GET", "/secrets/{pat}/"),
    CrashPoint("read the credential", "keyvault", "GET", "/secrets/{cred}/"),
    CrashPoint("list the versions", "keyvault", "GET", "/secrets/{pat}/versions"),
    CrashPoint(
        "Entra token", "entra", "POST", "/{tenant}/oauth2/v2.0/token", ("entra-client-secret",)
    ),
    CrashPoint("OAuth token", "databricks", "POST", "/oidc/v1/token", ("databricks-oauth",)),
    CrashPoint("list PATs", "databricks", "GET", "/api/2.0/token/list", SELF, 1),
    CrashPoint(
        "list PATs (admin)",
        "databricks",
        "GET",
        "/api/2.0/token-management/tokens",
        ("databricks-obo",),
        1,
    ),
    CrashPoint("tag a version", "keyvault", "PATCH", "/secrets/{pat}/[0-9a-f]{{32}}", max_skip=3),
    CrashPoint("read the Prequel key", "keyvault", "GET", "/secrets/{key}/"),
    CrashPoint("a Prequel call", "prequel", "*", "/.*", max_skip=3),
    CrashPoint("an Azure DevOps call", "devops", "*", "/.*", max_skip=2),
    CrashPoint("a Fivetran call", "fivetran", "*", "/.*", max_skip=2),
    CrashPoint("a GitHub call", "github", "*", "/.*", max_skip=2),
    CrashPoint("a webhook delivery", "webhook", "*", "/.*", max_skip=2),
    CrashPoint("mint", "databricks", "POST", "/api/2.0/token/create", SELF),
    CrashPoint(
        "mint on behalf",
        "databricks",
        "POST",
        "/api/2.0/token-management/on-behalf-of/tokens",
        ("databricks-obo",),
    ),
    CrashPoint("store as pending", "keyvault", "PUT", "/secrets/{pat}"),
    CrashPoint("SCIM Me", "databricks", "GET", ME, max_skip=2),
    CrashPoint("revoke", "databricks", "POST", "/api/2.0/token/delete", SELF),
    CrashPoint(
        "revoke (admin)",
        "databricks",
        "DELETE",
        "/api/2.0/token-management/tokens/[0-9a-f]+",
        ("databricks-obo",),
    ),
)
FAULT_MODES: dict[str, dict[str, Any]] = {
    "503 for the run": {"status": 503, "times": -1},
    "500 once": {"status": 500},
    "dropped connection": {"mode": "drop"},
    "answer lost": {"mode": "drop_after"},
    "killed before the call": {"mode": "stall"},
    "killed after the call": {"mode": "hold"},
}
KILLS = {"killed before the call", "killed after the call"}


@dataclass(frozen=True)
class Crash:
    """A crash armed on one call of one run (a timer run: of any target)."""

    point: CrashPoint
    mode: str
    skip: int

    def regex(self, emu: Emulators, target: str | None) -> str:
        """Return the call's path regex for *target* (None: every target)."""
        name = "[^/]+" if target is None else target
        return self.point.path.format(
            pat=f"{name}-pat",
            cred=f"{name}-sp-credential",
            key=f"{name}-prequel-key",
            tenant=emu.tenant_id,
        )


# --- the simulated world ----------------------------------------------------------------------


@dataclass
class _Break:
    """A target whose consumers or latest version hold a PAT an outside event killed."""

    since: float
    cause: str
    said: bool = False
    overdue: bool = False


@dataclass
class _Tracked:
    """One target, as the simulation follows it."""

    seeded: SeededTarget
    timing: str
    index: int
    target: Any = None
    """The target as the configuration has it (set when the runtime opens)."""
    paused_until: float = 0.0
    settled: bool = True
    broken: _Break | None = None
    blocking: dict[str, float] = field(default_factory=dict)
    """What keeps this target from being healed now (CAN_USE removed, credential expired) →
    since when."""
    blocks: list[tuple[str, float, float]] = field(default_factory=list)
    """(what, start, end) of every blocker of this target alone that is over."""
    """[start, end] of each blocker of this target alone (end = inf while it lasts)."""
    credential: str = ""
    credential_expires: float = 0.0
    last_outcome: str = ""
    rights_off: bool = False
    history: list[str] = field(default_factory=list)
    """The last runs and events of this target, for a violation's reader."""
    announced: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.seeded.name

    @property
    def grace(self) -> bool:
        return self.target.grace_period_hours > 0

    @property
    def long(self) -> bool:
        """Whether it rotates less often than every 90 days (only then can inactivity kill it)."""
        spec = TIMINGS[self.timing]
        return spec["lifetime_days"] - spec["rotate_before_days"] > INACTIVITY / DAY


class _TickLog(logging.Handler):
    """Every log record of the simulation, taken tick by tick for the I4 scan."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self._texts: list[tuple[str, str]] = []
        self._guard = threading.Lock()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception as exc:  # noqa: BLE001 — a broken record is itself a finding
            text = f"unformattable record: {exc!r}"
        with self._guard:
            self._texts.append((f"log {record.name}", text))

    def add(self, where: str, text: str) -> None:
        with self._guard:
            self._texts.append((where, text))

    def take(self) -> list[tuple[str, str]]:
        with self._guard:
            texts, self._texts = self._texts, []
        self.count += len(texts)
        return texts


@contextlib.contextmanager
def _own_logs() -> Iterator[_TickLog]:
    """Route every record to the simulation's scanner alone while it runs (then restore).

    A long simulation logs hundreds of thousands of DEBUG records; they are scanned tick by tick
    here instead of being kept for the session's final scan (and pytest's log capture).
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    handler = _TickLog()
    root.handlers = [handler]
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.handlers = handlers
        root.setLevel(level)


class Simulation:
    """The world, the schedule and the checks; :meth:`run` plays it."""

    def __init__(self, emu: Emulators, world: World, settings: Settings, log: _TickLog) -> None:
        self.emu = emu
        self.world = world
        self.s = settings
        self.log = log
        self.rng = random.Random(settings.seed)  # noqa: S311 — a schedule, not a secret
        self.later = random.Random(settings.seed + 1)  # noqa: S311
        """Draws made while playing (delays, redeliveries): the schedule itself stays fixed."""
        self.result = Result(settings)
        self.tracked: list[_Tracked] = []
        self.by_name: dict[str, _Tracked] = {}
        self.queue: list[tuple[float, int, str, dict[str, Any]]] = []
        self.seq = 0
        self.t0 = 0.0
        self.now = 0.0
        self.killed: dict[str, tuple[float, str]] = {}
        """token id → (when, why) for every PAT an outside event revoked."""
        self.outages: dict[str, float] = {}
        """service → when its outage started (while it lasts)."""
        self.global_blocks: list[tuple[str, float, float]] = []
        self.tick_crashes: dict[int, Crash] = {}
        self.failed_since_tick: set[str] = set()
        self.playing = False
        """Whether the history is over."""
        self.seen: set[str] = set()
        self.lock = SimLock()
        self.bystanders: dict[str, str] = {}
        """token id → what it is, for every PAT beside the targets' own (never to be revoked)."""
        self.judged: set[str] = set()
        self.shadow_app = ""
        self.rt: Runtime
        self._stack = AsyncExitStack()

    # --- the run ------------------------------------------------------------------------------

    def at(self, day: float, kind: str, **payload: Any) -> None:
        """Schedule an event *kind* (an ``_on_…`` handler) at simulated *day* (0 = the start)."""
        self._push(self.t0 + day * DAY, kind, **payload)

    async def run(self, script: Callable[[Simulation], None] | None = None) -> Result:
        """Play the history, then every tick with the events before it; return what was seen."""
        started = time.perf_counter()
        try:
            await self._history()
            self.playing = True
            if self.s.random_events:
                self._plan()
            if script is not None:
                script(self)
            ticks = round(self.s.days * DAY / self.s.timer)
            for k in range(1, ticks + 1):
                at = self.t0 + k * self.s.timer
                await self._events_until(at)
                self._at(at)
                await self._tick(k)
        finally:
            await self._stack.aclose()
            self.emu.faults.clear()
        self.result.wall_seconds = time.perf_counter() - started
        self.result.vault_secrets = len(self.emu.keyvault.names())
        self.result.scanned = self.log.count
        self.result.revocations = len(self.judged)
        self.result.bystanders = len(self.bystanders)
        self.result.secrets = len(self.emu.secrets)
        return self.result

    def violation(self, text: str) -> None:
        """Record a violation with the simulated day it was first seen (once, while it lasts)."""
        if text in self.seen:
            return
        self.seen.add(text)
        day = (self.now - self.t0) / DAY
        self.result.violations.append(f"day {day:.2f}: {text}")

    def _at(self, when: float) -> None:
        """Move the clock to *when* (never backwards)."""
        self.now = max(self.now, when)
        ahead = when - self.emu.clock.now()
        if ahead > 0:
            self.emu.clock.advance(ahead)

    async def _open_runtime(self) -> None:
        # The product's default: a young orphan may be a run's in flight (one that lost its lock).
        config = self.world.config(*(t.seeded for t in self.tracked), orphan_min_age_minutes=15)
        self.rt = await self._stack.enter_async_context(self.world.runtime(config, lock=self.lock))
        for t in self.tracked:
            found = config.target(t.name)
            assert found is not None
            t.target = found

    async def _restart(self) -> None:
        """A fresh process after a crash: new clients, nothing carried over."""
        await self._stack.aclose()
        self._stack = AsyncExitStack()
        await self._open_runtime()

    # --- setup: the targets and their history -------------------------------------------------

    async def _history(self) -> None:
        """Seed and bootstrap each target 0-88 days before day 0: PATs of every age exist."""
        self.t0 = self.emu.clock.now()
        self.shadow_app = str(uuid.uuid4())  # a second deployment's principal, in our workspace
        self.emu.databricks.add_service_principal(self.shadow_app, "another deployment's SP")
        layout = sorted(
            (self._draw_target(kind, i) for kind in KINDS for i in range(self.s.per_kind)),
            key=lambda x: -x[0],
        )
        self.emu.clock.advance(-HISTORY_DAYS * DAY)
        self.now = self.t0 - HISTORY_DAYS * DAY
        for age, kind, consumers, timing, idle_days, credential_days in layout:
            self._at(self.t0 - age * DAY)
            t = self._seed(kind, consumers, timing, credential_days)
            async with self.world.runtime(self.world.config(t.seeded)) as rt:
                report = await run_target(rt, rt.config.targets[0])
            self._note(report)
            if report.outcome is not Outcome.ROTATED and not _work_done(report):
                msg = f"the bootstrap of {t.name} failed: {report.error}"
                raise AssertionError(msg)
            if idle_days:  # its consumers stopped using it right after the bootstrap
                t.paused_until = self.t0 + idle_days * DAY
                self.result.outside[PAUSED] += 1
        self._at(self.t0)
        await self._open_runtime()
        self._use_pats()
        self._check(tick=False)

    def _draw_target(
        self, kind: str, i: int
    ) -> tuple[int, str, tuple[str, ...], str, float, float]:
        """Return (age in days, kind, consumers, timing, idle days, credential days) of one target.

        The first 150-day target of each kind has a consumer idle since a bootstrap 80-88 days
        ago (Databricks revokes its PAT within the first 10 days unless a forced rotation comes
        first), the second one sometimes; one target in ten has a credential that expires within
        40 days.
        """
        consumers, timing = LAYOUT[i % len(LAYOUT)]
        spec = TIMINGS[timing]
        period = int(spec["lifetime_days"] - spec["rotate_before_days"])
        age = self.rng.randrange(0, min(HISTORY_DAYS, period - 1) + 1)
        idle, credential = 0.0, 400.0
        if self.s.random_events:
            slot = i % len(LAYOUT)
            if slot == 2:
                age, idle = self.rng.randrange(80, HISTORY_DAYS + 1), self.rng.uniform(100, 200)
            elif slot == 6 and self.rng.random() < 0.5:
                idle = self.rng.uniform(100, 200)
            credential = self.rng.uniform(3, 40 if slot == 3 else 420)
        return age, kind, CONSUMERS[consumers], timing, idle, credential

    def _seed(
        self, kind: str, consumers: tuple[str, ...], timing: str, credential_days: float
    ) -> _Tracked:
        spec = {**TIMINGS[timing], "health_check_hours": self.s.health_check_hours}
        spec |= credential_timing(kind, len(self.tracked))
        seeded = self.world.target(kind=kind, consumers=consumers, timing=spec)  # type: ignore[arg-type]
        t = _Tracked(seeded, timing, index=len(self.tracked))
        self.bystanders.update(mint_bystanders(self.emu, seeded, self.shadow_app))
        self.tracked.append(t)
        self.by_name[seeded.name] = t
        cred = f"{seeded.name}-sp-credential"
        latest = self.emu.keyvault.latest(cred)
        assert latest is not None
        t.credential = latest.value
        t.credential_expires = self.t0 + credential_days * DAY
        self.emu.keyvault.update(cred, None, {"exp": int(t.credential_expires)})
        if kind in ROTATING:  # the once-only permission setup; nobody replaces it by hand
            seed_rights(self.emu, seeded, t.credential_expires)
        return t

    # --- the schedule ---------------------------------------------------------------------------

    def _push(self, when: float, kind: str, **payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (when, self.seq, kind, payload))

    def _poisson(self, every_days: float, kind: str, draw: Callable[[], dict[str, Any]]) -> None:
        """Schedule *kind* at random moments, on average every *every_days*; at least once."""
        end = self.t0 + self.s.days * DAY
        at = self.t0 + self.rng.expovariate(1 / every_days) * DAY
        if at >= end:
            at = self.rng.uniform(self.t0, end)
        while at < end:
            self._push(at, kind, **draw())
            at += self.rng.expovariate(1 / every_days) * DAY

    def _plan(self) -> None:
        """Draw the whole schedule of outside events and triggers from the seed."""
        rng, n = self.rng, len(self.tracked)

        def target() -> int:
            return rng.randrange(n)

        self._poisson(
            6,
            "admin-revoke",
            lambda: {
                "t": target(),
                "which": rng.choices(["current", "previous", "pending"], [6, 3, 1])[0],
            },
        )
        self._poisson(10, "can-use-off", lambda: {"t": target(), "hours": rng.uniform(1, 48)})
        own = [i for i, t in enumerate(self.tracked) if t.seeded.kind in ROTATING] or [0]
        self._poisson(20, "rights-off", lambda: {"t": rng.choice(own), "hours": rng.uniform(1, 72)})
        self._poisson(45, "tenant-policy", lambda: {"hours": rng.uniform(1, 72)})
        long = [i for i, t in enumerate(self.tracked) if t.long and t.seeded.consumers] or [0]
        self._poisson(
            15, "pause-usage", lambda: {"t": rng.choice(long), "days": rng.uniform(60, 200)}
        )
        for service, every in OUTAGE_EVERY_DAYS.items():
            self._poisson(
                every, "outage", lambda s=service: {"service": s, "hours": rng.uniform(0.5, 30)}
            )
        self._poisson(15, "outage", lambda: {"service": "keyvault", "hours": rng.uniform(0.5, 20)})
        self._poisson(4, "crash", lambda: {"t": target(), "crash": self._draw_crash(manual=True)})
        self._poisson(
            3,
            "kv-event",
            lambda: {
                "t": target(),
                "flavor": rng.choice(["latest", "older", "none"]),
                "type": rng.choice([NEAR_EXPIRY, EXPIRED]),
                "duplicate": rng.random() < 0.3,
            },
        )
        self._poisson(10, "other-deployment", lambda: {"t": target()})
        edits = itertools.cycle(EDITS)  # each kind of edit in turn, so a short horizon sees all
        self._poisson(6, "tag-edit", lambda: {"t": target(), "what": next(edits)})
        self._poisson(
            8, "lease-lost", lambda: {"t": target(), "crash": self._draw_crash(manual=True)}
        )
        self._poisson(5, "manual", lambda: {"t": target(), "dry_run": False})
        self._poisson(15, "manual", lambda: {"t": target(), "dry_run": True})
        ticks = round(self.s.days * DAY / self.s.timer)
        for k in range(1, ticks + 1):
            if rng.random() < 1 / 12:
                self.tick_crashes[k] = self._draw_crash(manual=False)
        for i in range(n):
            self._credential_lifecycle(i)

    def _draw_crash(self, *, manual: bool) -> Crash:
        points = CRASH_POINTS[1:] if manual else CRASH_POINTS
        point = self.rng.choice(points)
        mode = self.rng.choice(list(FAULT_MODES))
        return Crash(point, mode, self.rng.randint(0, point.max_skip))

    def _credential_lifecycle(self, i: int) -> None:
        """Schedule the replacement of target *i*'s credential: up to 28 days early, 7 late."""
        t = self.tracked[i]
        if t.seeded.kind not in ROTATING:  # a principal that rotates its own: nobody does
            lead = self.later.uniform(-7, 28) * DAY
            self._push(max(self.now, t.credential_expires - lead), "credential-replace", t=i)
        self._push(t.credential_expires, "credential-expire", t=i, value=t.credential)
        near = t.credential_expires - 30 * DAY  # Key Vault's own event (no target manages it)
        self._push(
            max(self.now, near),
            "kv-delivery",
            event=self._event(NEAR_EXPIRY, f"{t.name}-sp-credential", None),
            first=max(self.now, near),
        )

    async def _events_until(self, until: float) -> None:
        while self.queue and self.queue[0][0] < until:
            when, _, kind, payload = heapq.heappop(self.queue)
            self._at(when)
            await getattr(self, "_on_" + kind.replace("-", "_"))(**payload)

    # --- outside events -----------------------------------------------------------------------

    async def _on_admin_revoke(self, t: int, which: str) -> None:
        tr = self.tracked[t]
        candidates = [
            v.tags["token-id"]
            for v in reversed(self.emu.keyvault.versions(tr.seeded.secret_name))
            if v.tags.get("stage") == which and v.enabled and "token-id" in v.tags
        ]
        live = [tid for tid in candidates if self.emu.databricks.get(tid) is not None]
        if live and self.emu.databricks.revoke(live[0]):
            self.killed[live[0]] = (self.now, f"an admin revoked the {which} PAT")
            self.result.outside[f"admin revoked the {which} PAT"] += 1
            self._observe_breaks()

    async def _on_can_use_off(self, t: int, hours: float) -> None:
        tr = self.tracked[t]
        app = tr.seeded.application_id
        principal = self.emu.databricks.principal(app)
        if principal is None or not principal.can_use:
            return
        for token in self.emu.databricks.tokens_of(app):
            self.killed[token.token_id] = (self.now, "CAN_USE removed")
        self.emu.databricks.set_can_use(app, False)
        tr.blocking[NO_CAN_USE] = self.now
        self.result.outside["CAN_USE removed and restored"] += 1
        self._push(self.now + hours * HOUR, "can-use-on", t=t)
        self._observe_breaks()

    async def _on_can_use_on(self, t: int) -> None:
        tr = self.tracked[t]
        self.emu.databricks.set_can_use(tr.seeded.application_id, True)
        tr.blocks.append((NO_CAN_USE, tr.blocking.pop(NO_CAN_USE), self.now))

    async def _on_rights_off(self, t: int, hours: float) -> None:
        """The right to rotate its credential is taken from a principal for a while."""
        tr = self.tracked[t]
        if tr.seeded.kind not in ROTATING or tr.rights_off:
            return
        set_rights(self.emu, tr.seeded, granted=False)
        tr.rights_off = True  # no blocker of a PAT heal: only the credential phase needs it
        self.result.outside[RIGHTS_OFF] += 1
        self._push(self.now + hours * HOUR, "rights-on", t=t)

    async def _on_rights_on(self, t: int) -> None:
        tr = self.tracked[t]
        set_rights(self.emu, tr.seeded, granted=True)
        tr.rights_off = False

    async def _on_tenant_policy(self, hours: float) -> None:
        """The tenant caps a new client secret's lifetime below what the targets ask for."""
        if self.emu.graph.max_password_lifetime is not None:
            return
        self.emu.graph.max_password_lifetime = 30 * DAY
        self.result.outside[TENANT_POLICY] += 1
        self._push(self.now + hours * HOUR, "tenant-policy-end")

    async def _on_tenant_policy_end(self) -> None:
        self.emu.graph.max_password_lifetime = None

    async def _on_pause_usage(self, t: int, days: float) -> None:
        tr = self.tracked[t]
        tr.paused_until = max(tr.paused_until, self.now + days * DAY)
        self.result.outside[PAUSED] += 1

    async def _on_outage(self, service: str, hours: float) -> None:
        if service in self.outages:
            return
        self.outages[service] = self.now
        self.result.outside[f"{service} outage"] += 1
        self._push(self.now + hours * HOUR, "outage-end", service=service)
        self._sync_faults()

    async def _on_outage_end(self, service: str) -> None:
        started = self.outages.pop(service)
        self.global_blocks.append((service, started, self.now))
        self._sync_faults()

    def _sync_faults(self) -> None:
        """Leave exactly the outages that last now in the fault plan."""
        self.emu.faults.clear()
        for service in self.outages:
            self.emu.faults.add(service, "*", ".*", status=503, times=-1)

    async def _on_credential_replace(self, t: int) -> None:
        """The owner stores a new credential as a new version of the credential secret."""
        tr = self.tracked[t]
        seeded, emu = tr.seeded, self.emu
        kind = seeded.kind
        if kind == "entra-client-secret":
            value = emu.entra.add_client_secret(seeded.table["principal"]["client_id"])
        elif kind == "databricks-oauth":
            value = emu.databricks.add_oauth_secret(seeded.application_id)
        else:
            value = emu.databricks.add_admin_user(f"admin-{seeded.name}@example.com")
        tr.credential, tr.credential_expires = value, self.now + self.later.uniform(90, 420) * DAY
        emu.keyvault.set_secret(f"{tr.name}-sp-credential", value, exp=int(tr.credential_expires))
        late = EXPIRED_CREDENTIAL in tr.blocking
        self.result.outside["credential replaced" + (" late" if late else "")] += 1
        if late:
            tr.blocks.append((EXPIRED_CREDENTIAL, tr.blocking.pop(EXPIRED_CREDENTIAL), self.now))
        self._credential_lifecycle(t)

    async def _on_credential_expire(self, t: int, value: str) -> None:
        """A credential's own expiry: an Entra secret or an admin PAT stops working."""
        tr = self.tracked[t]
        kind = tr.seeded.kind
        if kind in ROTATING:
            expire_seeded(self.emu, tr.seeded, value)
            return
        if kind == "entra-client-secret":
            client = tr.seeded.table["principal"]["client_id"]
            with contextlib.suppress(KeyError):
                self.emu.entra.remove_client_secret(client, value)
        elif kind == "databricks-obo":
            for token in self.emu.databricks.all_tokens():
                if token.value == value:
                    self.emu.databricks.revoke(token.token_id)
                    self.killed[token.token_id] = (self.now, EXPIRED_CREDENTIAL)
        if value == tr.credential:  # not replaced in time
            self.result.outside["credential expired before its replacement"] += 1
            if kind != "databricks-oauth":  # the emulator cannot delete an OAuth secret
                tr.blocking[EXPIRED_CREDENTIAL] = self.now

    # --- triggers between ticks ---------------------------------------------------------------

    async def _on_manual(self, t: int, dry_run: bool) -> None:
        tr = self.tracked[t]
        self._observe_breaks()
        self.emu.requests.clear()
        self.result.triggers["dry run" if dry_run else "manual rotation"] += 1
        report = await run_target(self.rt, tr.target, force=not dry_run, dry_run=dry_run)
        self._note(report, settles=not dry_run)
        if dry_run:
            writes = [
                f"{e.service} {e.method} {e.path}"
                for e in self.emu.requests.entries()
                if _is_write(e.service, e.method, e.path)
            ]
            if writes:
                self.violation(f"a dry run of {tr.name} wrote: {writes[:3]}")
        self._check(tick=False)

    async def _on_crash(self, t: int, crash: Crash) -> None:
        """A manual rotation of one target that crashes at one call."""
        tr = self.tracked[t]
        if tr.seeded.kind not in crash.point.kinds:
            return
        tr.history.append(f"crash at {crash.point.label} ({crash.mode}, skip {crash.skip})")
        self._observe_breaks()
        self.result.triggers["manual rotation"] += 1
        outcome = await self._under_fault(
            crash,
            crash.regex(self.emu, tr.name),
            lambda: run_target(self.rt, tr.target, force=True),
            tr,
        )
        if outcome is None:  # killed
            tr.settled = False
            self.failed_since_tick.add(tr.name)
        else:
            self._note(outcome)
        self._check(tick=False)

    # --- records that lie -------------------------------------------------------------------

    async def _on_other_deployment(self, t: int) -> None:
        """The second deployment (and a person) mint PATs beside target *t*'s."""
        tr = self.tracked[t]
        self.bystanders.update(mint_bystanders(self.emu, tr.seeded, self.shadow_app))
        self.result.outside["another deployment minted"] += 1

    async def _on_tag_edit(self, t: int, what: str) -> None:
        """A person edits target *t*'s tags (see ``tests.sim_records``)."""
        tr = self.tracked[t]
        name, emu = tr.seeded.secret_name, self.emu
        enabled = [v for v in emu.keyvault.versions(name) if v.enabled]
        current = next((v for v in reversed(enabled) if v.tags.get("stage") == "current"), None)
        if not enabled or (current is None and what != "forged-pending"):
            return
        if what == "token-id" and current is not None:
            others = [
                tok.token_id
                for tok in emu.databricks.tokens_of(tr.seeded.application_id)
                if tok.token_id != current.tags.get("token-id") and tok.token_id in self.bystanders
            ]
            if not others:
                return
            emu.keyvault.update(
                name, current.version, {"tags": {**current.tags, "token-id": others[0]}}
            )
        elif what == "previous-token-id" and current is not None:
            person, _ = persons_pat(emu, f"edited-{tr.name}-{self.seq}@example.com")
            self.bystanders[person] = "a person's PAT named by an edited tag"
            keys = ("previous-token-id", "revoke-previous-at", "previous-revoked")
            before = {k: current.tags.get(k) for k in keys}
            lie = {"previous-token-id": person, "revoke-previous-at": str(int(self.now))}
            tags = {k: v for k, v in {**current.tags, **lie}.items() if k != "previous-revoked"}
            emu.keyvault.update(name, current.version, {"tags": tags})
            tr.blocking["tags edited"] = self.now  # refused runs until a person puts it right
            fix = self.now + self.later.uniform(1, 48) * HOUR
            self._push(fix, "tag-fix", t=t, version=current.version, before=before)
        elif what == "stage":
            latest = enabled[-1]
            emu.keyvault.update(name, latest.version, {"tags": {**latest.tags, "stage": "curent"}})
        else:
            person, value = persons_pat(emu, f"forger-{tr.name}-{self.seq}@example.com")
            self.bystanders[person] = "a person's PAT in a forged pending version"
            tags = {
                "managed-by": "pat-rotator",
                "target": tr.name,
                "stage": "pending",
                "token-id": person,
                "rotation-id": uuid.uuid4().hex[:16],
            }
            emu.keyvault.set_secret(name, value, tags=tags)
        tr.settled = False
        self.result.outside[f"tag edit: {what}"] += 1

    async def _on_tag_fix(self, t: int, version: str, before: dict[str, str | None]) -> None:
        """The person who was alerted puts the edited tags back."""
        tr = self.tracked[t]
        name = tr.seeded.secret_name
        found = next((v for v in self.emu.keyvault.versions(name) if v.version == version), None)
        if found is not None:
            tags = {k: v for k, v in found.tags.items() if k not in before}
            tags.update({k: v for k, v in before.items() if v is not None})
            self.emu.keyvault.update(name, version, {"tags": tags})
        tr.blocks.append(("tags edited", tr.blocking.pop("tags edited", self.now), self.now))

    async def _on_lease_lost(self, t: int, crash: Crash) -> None:
        """A forced run of *t* is held at one call, loses its lock, and another run rotates."""
        tr = self.tracked[t]
        if tr.seeded.kind not in crash.point.kinds:
            return
        tr.history.append(f"lease lost at {crash.point.label} ({crash.mode}, skip {crash.skip})")
        self._observe_breaks()
        point = crash.point
        hold = threading.Event()
        regex = crash.regex(self.emu, tr.name)
        fault = self.emu.faults.add(
            point.service, point.method, regex, skip=crash.skip, mode="hold", hold=hold
        )
        first = asyncio.create_task(run_target(self.rt, tr.target, force=True))
        arrived = asyncio.create_task(asyncio.to_thread(fault.arrived.wait, 60))
        await asyncio.wait({first, arrived}, return_when=asyncio.FIRST_COMPLETED)
        if fault.arrived.is_set():
            self.lock.lose(tr.name)
            self.result.outside["lock lost mid-run"] += 1
            self.result.triggers["manual rotation"] += 1
            self._note(await run_target(self.rt, tr.target, force=True))
        hold.set()
        fault.arrived.set()  # ends the waiting thread if the call never came
        await arrived
        report = await first
        self.result.triggers["manual rotation"] += 1
        self._note(report)
        tr.settled = tr.settled and report.ok
        self._sync_faults()
        self._check(tick=False)

    async def _on_kv_event(self, t: int, flavor: str, type: str, duplicate: bool) -> None:  # noqa: A002
        tr = self.tracked[t]
        versions = self.emu.keyvault.versions(tr.seeded.secret_name)
        if flavor == "latest" or (flavor == "older" and len(versions) < 2):
            version: str | None = versions[-1].version
        elif flavor == "older":
            version = self.later.choice(versions[:-1]).version
        else:
            version = None
        event = self._event(type, tr.seeded.secret_name, version)
        await self._on_kv_delivery(event, self.now)
        if duplicate:
            self._push(
                self.now + self.later.uniform(60, 1800), "kv-delivery", event=event, first=self.now
            )

    def _event(self, kind: str, secret: str, version: str | None) -> dict[str, Any]:
        vault = self.emu.keyvault_url
        ident = f"{vault}/secrets/{secret}" + (f"/{version}" if version else "")
        data = {
            "Id": ident,
            "VaultName": "simulated",
            "ObjectType": "Secret",
            "ObjectName": secret,
            "Version": version or "",
            "NBF": None,
            "EXP": None,
        }
        return {"event_id": str(uuid.uuid4()), "event_type": kind, "subject": secret, "data": data}

    async def _on_kv_delivery(self, event: dict[str, Any], first: float) -> None:
        """Deliver a Key Vault event as Event Grid does; redeliver it later when it raised."""
        self.result.triggers["Key Vault event delivery"] += 1
        self._observe_breaks()
        parsed = parse_event(**event)
        tr = next((t for t in self.tracked if t.seeded.secret_name == parsed.secret_name), None)
        before = self.emu.keyvault.latest(parsed.secret_name)
        stale = (
            parsed.version is not None and before is not None and before.version != parsed.version
        )
        try:
            said = await _on_expiry(self.rt, parsed)
        except Exception as exc:  # noqa: BLE001 — the host logs it and Event Grid redelivers
            self.log.add("event failure", str(exc))
            if not isinstance(exc, RuntimeError | errors.RotationError):
                self.violation(f"an event raised {type(exc).__name__}: {exc}")
            if tr is not None:  # it may have run and failed: no I3 until a run succeeds
                self.failed_since_tick.add(tr.name)
                tr.settled = False
            if self.now - first < DAY:
                again = self.now + self.later.uniform(60, HOUR)
                self._push(again, "kv-delivery", event=event, first=first)
            else:
                self.result.triggers["Key Vault event dead-lettered"] += 1
            self._check(tick=False)
            return
        self.log.add("event ack", said)
        after = self.emu.keyvault.latest(parsed.secret_name)
        if stale and (after is None or after.version != before.version):  # type: ignore[union-attr]
            self.violation(f"an event naming a replaced version changed the vault: {said}")
        if parsed.version is None and "forced" in said:
            self.violation(f"an event naming no version forced a rotation: {said}")
        if tr is not None and said.startswith("event "):  # it ran: "event TYPE for NAME: outcome"
            outcome = said.split(": ", 1)[1].split(" ", 1)[0]
            self.result.outcomes[outcome] += 1
            tr.settled = outcome != Outcome.FAILED.value
            if not tr.settled:
                self.failed_since_tick.add(tr.name)
        self._check(tick=False)

    # --- ticks --------------------------------------------------------------------------------

    async def _tick(self, k: int) -> None:
        """One timer run, exactly as the Function App's timer does it; then every check."""
        self._observe_breaks()  # a PAT that died since the last check and is healed in this run
        self._use_pats()
        self.emu.requests.clear()
        self.result.triggers["timer run"] += 1
        due: list[str] = []
        crash = self.tick_crashes.get(k)
        started = time.perf_counter()
        if crash is None:
            reports = await self._timer(due)
        else:
            regex = crash.regex(self.emu, None)
            reports = await self._under_fault(crash, regex, lambda: self._timer(due))
        if reports is None:  # the invocation failed (or its process was killed)
            for name in due:
                self.by_name[name].settled = False
        for report in reports or []:
            self._note(report)
        if not due and reports is not None and crash is None and not self.outages:
            self._idle_cost(time.perf_counter() - started)
        self._check(tick=True, failed=reports is None)
        self.failed_since_tick.clear()

    async def _timer(self, due: list[str]) -> list[TargetReport] | None:
        """Do what ``rotation.app.triggers.timer_tick`` does; None when the invocation failed."""
        try:
            listing, found = await needing_work(self.rt)
            due.extend(t.name for t in found)
            if len(found) > FANOUT_THRESHOLD:
                self.result.triggers["timer fan-out"] += 1
                return await self._fan_out(found)
            return await rotate(self.rt, due, listing=listing) if due else []
        except errors.RotationError as exc:  # the invocation fails: the host shows it
            self.log.add("timer failure", str(exc))
        except Exception as exc:  # noqa: BLE001 — an untranslated error is a finding
            self.violation(f"the timer raised {type(exc).__name__}: {exc}")
        return None

    async def _fan_out(self, due: list[Target]) -> list[TargetReport]:
        """One queue message per target; the host retries a failed one up to 5 times."""
        gate = asyncio.Semaphore(self.rt.config.concurrency)

        async def message(target: Target) -> TargetReport:
            async with gate:
                for _ in range(MAX_DEQUEUE - 1):
                    report = await run_target(self.rt, target)
                    if report.ok:
                        return report
                    self._note(report)
                return await run_target(self.rt, target)

        return list(await asyncio.gather(*(message(t) for t in due)))

    def _idle_cost(self, seconds: float) -> None:
        """An idle tick costs one paged vault listing: ⌈secrets/25⌉ list calls, nothing else."""
        calls = Counter(f"{e.service} {e.method} {e.path}" for e in self.emu.requests.entries())
        pages = math.ceil(len(self.emu.keyvault.names()) / KV_PAGE)
        self.result.idle_ticks += 1
        self.result.idle_seconds += seconds
        self.result.idle_cost[" + ".join(f"{k} x{v}" for k, v in sorted(calls.items()))] += 1
        if calls != Counter({"keyvault GET /secrets": pages}):
            self.violation(f"an idle tick made {dict(calls)}, not {pages} vault list calls")

    async def _under_fault(
        self,
        crash: Crash,
        regex: str,
        make: Callable[[], Coroutine[Any, Any, Any]],
        scope: _Tracked | None = None,
    ) -> Any:
        """Run *make()* with *crash* armed; return its result, or None when it was killed.

        A crash blocks healing until it is over: *scope*'s only, or every target's (a timer run).
        """
        point = crash.point
        options = FAULT_MODES[crash.mode]
        fault = self.emu.faults.add(point.service, point.method, regex, skip=crash.skip, **options)
        try:
            if crash.mode not in KILLS:
                result = await make()
                if fault.hits:
                    self.result.outside[f"crash: {crash.mode}"] += 1
                    self._blocked(scope)
                return result
            after = crash.mode == "killed after the call"
            result = await self._killed(make(), fault, after=after)
            if result is None:
                self._blocked(scope)
            return result
        finally:
            self._sync_faults()

    async def _killed(self, coro: Awaitable[Any], fault: Fault, *, after: bool) -> Any:
        """Kill the run once its call reached the emulator, before or after the server did it.

        *after*: the held call is released and this event loop waits, blocked, until the server
        has carried it out and answered — so the run never reads the answer — and only then is
        the run cancelled (a request body the server had not read yet would otherwise be
        dropped with the connection). Otherwise the stalled call is dropped unprocessed when
        the cancelled run closes its connection. Then a fresh process: new clients.
        """
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        arrived = loop.run_in_executor(None, fault.arrived.wait, 120)
        await asyncio.wait({task, arrived}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # it never made that call
            fault.arrived.set()
            await arrived
            return task.result()
        if after:
            fault.release()
            if not fault.finished.wait(120):  # blocks this loop on purpose: see above
                msg = "the emulator never finished the held call"
                raise RuntimeError(msg)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        fault.release()
        self.result.outside[f"crash: {'killed after' if after else 'killed before'} a call"] += 1
        await self._restart()
        return None

    def _blocked(self, scope: _Tracked | None) -> None:
        if scope is None:
            self.global_blocks.append(("crash", self.now, self.now))
        else:
            scope.blocks.append(("crash", self.now, self.now))

    def _use_pats(self) -> None:
        """Consumers (or, Key Vault only, whoever reads the vault) use their PAT, unless paused."""
        for t in self.tracked:
            if t.paused_until > self.now:
                continue
            held = self._held(t)
            if t.seeded.consumers:
                held.pop(LATEST, None)
            for value in held.values():
                self.emu.databricks.authenticate_pat(value)

    # --- checks -------------------------------------------------------------------------------

    def _note(self, report: TargetReport, *, settles: bool = True) -> None:
        """Remember a run's report: outcome, settledness, text for the I4 scan."""
        self.result.outcomes[report.outcome.value] += 1
        self.log.add(f"report {report.target}", json.dumps(report.to_json()))
        self.log.add(f"report repr {report.target}", repr(report))
        t = self.by_name[report.target]
        self._judge_credential(t, report)
        t.last_outcome = (
            f"{report.outcome.value} ({report.reason[:60]}; swept {len(report.swept)}, revoked "
            f"{len(report.revoked)})"
        )
        err = f"{report.error.kind} at {report.error.step}" if report.error else "-"
        line = (
            f"d{(self.now - self.t0) / DAY:.3f} {report.outcome.value} [{report.reason[:90]}] "
            f"rot={(report.rotation_id or '-')[:6]} swept={[x[:6] for x in report.swept]} "
            f"deferred={[x[:6] for x in report.deferred]} err={err}"
        )
        t.history = [*t.history[-7:], line]
        if report.outcome is Outcome.FAILED:
            self.failed_since_tick.add(t.name)
        if settles:  # a mismatch leaves the PAT it could not trust to the next run's sweep
            # A mismatch, or a young orphan left for later, leaves work for the next run.
            later = report.outcome is Outcome.MISMATCH or bool(report.deferred)
            t.settled = (report.ok or _work_done(report)) and not later
        self._tidy_admin(t, report)

    def _judge_credential(self, t: _Tracked, report: TargetReport) -> None:
        """Count the credential phase; a self-rotating principal never fails for its expiry."""
        if t.seeded.kind not in ROTATING:
            return
        if report.credential_result:
            self.result.credentials[report.credential_result] += 1
        if report.error is not None and report.error.kind == "credential-expiring":
            self.violation(
                f"{t.name}: a run failed for its credential's expiry ({report.error.message[:120]})"
                f"; credential phase: {report.credential_result}"
            )

    def _tidy_admin(self, t: _Tracked, report: TargetReport) -> None:
        """Sometimes an admin revokes a PAT they do not recognise soon after a run.

        The previous PAT within its grace period after a rotation; the pending PAT a failed run
        left behind. (Random revocations rarely find either alive.)
        """
        if not self.s.random_events or not self.playing:  # not in self-tests or the history
            return
        rotated = report.outcome in {Outcome.ROTATED, Outcome.HEALED}
        if rotated and t.grace and self.later.random() < 0.3:
            grace = t.target.grace_period_hours * HOUR
            self._push(
                self.now + self.later.uniform(0, grace), "admin-revoke", t=t.index, which="previous"
            )
        elif report.outcome is Outcome.FAILED and self.later.random() < 0.2:
            self._push(
                self.now + self.later.uniform(0, 6 * HOUR),
                "admin-revoke",
                t=t.index,
                which="pending",
            )

    def _held(self, t: _Tracked) -> dict[str, str]:
        """Return where → PAT value for every consumer and the latest enabled version."""
        held = {f"{c.kind} {c.id}": held_pat(self.emu, c.kind, c.id) for c in t.seeded.consumers}
        enabled = [v for v in self.emu.keyvault.versions(t.seeded.secret_name) if v.enabled]
        if enabled:
            held[LATEST] = enabled[-1].value
        return held

    def _dead(self, t: _Tracked) -> list[tuple[str, str | None, tuple[float, str] | None]]:
        """Return (where, token id, outside cause or None) for every dead PAT *t* holds."""
        ids = {
            v.value: v.tags.get("token-id")
            for v in self.emu.keyvault.versions(t.seeded.secret_name)
        }
        dead = []
        for where, value in self._held(t).items():
            if self.emu.databricks.is_live(value):
                continue
            token_id = ids.get(value)
            dead.append((where, token_id, self._outside_cause(token_id)))
        return dead

    def _outside_cause(self, token_id: str | None) -> tuple[float, str] | None:
        if token_id is None:
            return None
        reason = self.emu.databricks.revocation_reason(token_id)
        if reason == "inactive":
            used = self.emu.databricks.last_used(token_id)
            return ((used or 0) / 1000 + INACTIVITY, INACTIVE)
        if reason is not None and token_id in self.killed:
            return self.killed[token_id]
        return None

    def _observe_breaks(self) -> None:
        """Open a break for every target an outside event just broke (no run in between)."""
        for t in self.tracked:
            self._open_break(t, [c for _, _, c in self._dead(t) if c is not None])

    def _open_break(self, t: _Tracked, causes: list[tuple[float, str]]) -> None:
        if causes and t.broken is None:
            since, why = min(causes)
            t.broken = _Break(since, why)
            if why == INACTIVE:
                self.result.outside["revoked after 90 days unused"] += 1

    def _check(self, *, tick: bool, failed: bool = False) -> None:
        """Check I1-I4 (and, at a tick, the heal bound and 'said so') for every target."""
        values = self.emu.secrets.values()
        for where in hygiene.find(self.log.take(), values):
            self.violation(f"I4: {where}")
        seeded = [t.seeded for t in self.tracked]
        for text in not_its_own(self.emu, seeded, set(self.killed), self.judged):
            self.violation(text)
        for t in self.tracked:
            self._check_target(t, tick=tick, failed=failed)
            self._announce_expiry(t)

    def _check_target(self, t: _Tracked, *, tick: bool, failed: bool) -> None:
        dead = self._dead(t)
        for where, token_id, cause in dead:
            if cause is None:
                why = self.emu.databricks.revocation_reason(token_id) if token_id else None
                self.violation(
                    f"I1/I2: {t.name}: {where} holds dead PAT {token_id} "
                    f"({why or 'expired or unknown'}) that no outside event killed"
                )
        self._open_break(t, [c for _, _, c in dead if c is not None])
        if not dead and t.broken is not None:
            self._healed(t)
        max_live = 2 if t.grace else 1
        found = violations(self.emu, t.seeded, settled=t.settled, max_live=max_live)
        for text in found:
            if not text.startswith(("I1", "I2")):  # those are judged above, with their cause
                self.violation(f"{t.name}: {text} [{self._state_of(t)}]")
        if t.seeded.kind in ROTATING and not stored_credential_works(self.emu, t.seeded):
            self.violation(f"{t.name}: the credential in Key Vault no longer authenticates")
        live = rotator_tokens(self.emu, t.seeded)
        if len(live) > MAX_LIVE:
            self.violation(f"leak: {t.name} has {len(live)} live rotator PATs (at most {MAX_LIVE})")
        if tick and t.broken is not None:
            self._judge_break(t, failed=failed)

    def _state_of(self, t: _Tracked) -> str:
        """Describe *t*'s versions and live rotator PATs briefly (for a violation's reader)."""
        versions = [
            f"{v.tags.get('stage')}{'' if v.enabled else '(disabled)'}:"
            f"{v.tags.get('token-id', '-')[:6]}/{v.tags.get('rotation-id', '-')[:6]}"
            f"{'+minting ' + v.tags['minting'] if v.tags.get('minting') else ''}"
            for v in self.emu.keyvault.versions(t.seeded.secret_name)
        ]
        tokens = [
            f"{tok.token_id[:6]}/{m.rotation_id[:6] if (m := parse_comment(tok.comment)) else '?'}"
            for tok in rotator_tokens(self.emu, t.seeded)  # type: ignore[attr-defined]
        ]
        return (
            f"versions {versions[-4:]}; live rotator PATs {tokens}; last outcome {t.last_outcome};"
            f" history {t.history}"
        )

    def _judge_break(self, t: _Tracked, *, failed: bool) -> None:
        b = t.broken
        assert b is not None
        bound = self.s.heal_bound
        possible = self._possible_since(t, b.since)
        if possible is not None and self.now - possible > bound and not b.overdue:
            b.overdue = True
            self.violation(
                f"{t.name}: broken since day {(b.since - self.t0) / DAY:.2f} ({b.cause}), healing "
                f"possible since day {(possible - self.t0) / DAY:.2f}, not healed within "
                f"{bound / HOUR:g} h"
            )
        said = failed or t.name in self.failed_since_tick
        if self.now - b.since > bound and not said and not b.said:
            b.said = True
            self.violation(
                f"{t.name}: its PAT is dead for {(self.now - b.since) / HOUR:.1f} h ({b.cause}) "
                "and no failed run says so"
            )

    def _blockers(self, t: _Tracked) -> list[str]:
        """Return what keeps *t* from being healed now."""
        outages = [f"{svc} outage" for svc in self.outages if svc in self._needs(t)]
        return [*t.blocking, *outages]

    def _needs(self, t: _Tracked) -> set[str]:
        """Return the services (and crashes) a heal of *t* depends on."""
        return {"keyvault", "crash"} | {SERVICE_OF[c.kind] for c in t.seeded.consumers}

    def _possible_since(self, t: _Tracked, since: float) -> float | None:
        """Return when healing *t* became possible (None: a blocker still lasts)."""
        if self._blockers(t):
            return None
        ends = [e for _, _, e in t.blocks if e > since]
        ends += [e for svc, _, e in self.global_blocks if svc in self._needs(t) and e > since]
        return max([since, *ends])

    def _healed(self, t: _Tracked) -> None:
        b = t.broken
        assert b is not None
        possible = self._possible_since(t, b.since)
        if possible is None:  # a heal that cannot happen: the model or the rotator is wrong
            self.violation(f"{t.name} was healed while {self._blockers(t)} still lasted")
            possible = b.since
        self.result.heals += 1
        if self.now - possible > self.result.worst_heal:
            self.result.worst_heal_story = (
                f"{t.name} ({t.seeded.kind}, {t.timing}, consumers "
                f"{[c.kind for c in t.seeded.consumers]}): broken at day "
                f"{(b.since - self.t0) / DAY:.3f} by {b.cause}, healable from day "
                f"{(possible - self.t0) / DAY:.3f}, healed at day {(self.now - self.t0) / DAY:.3f}; "
                f"history {t.history}"
            )
        self.result.worst_heal = max(self.result.worst_heal, self.now - possible)
        self.result.worst_break = max(self.result.worst_break, self.now - b.since)
        t.broken = None

    def _announce_expiry(self, t: _Tracked) -> None:
        """Schedule Key Vault's own near-expiry and expired events for a new latest version."""
        latest = self.emu.keyvault.latest(t.seeded.secret_name)
        if latest is None or latest.version in t.announced or latest.exp is None:
            return
        t.announced.add(latest.version)
        for kind, at in ((NEAR_EXPIRY, latest.exp - 30 * DAY), (EXPIRED, float(latest.exp))):
            when = max(self.now, at) + self.later.uniform(0, 600)
            self._push(
                when,
                "kv-delivery",
                event=self._event(kind, t.seeded.secret_name, latest.version),
                first=when,
            )


def _work_done(report: TargetReport) -> bool:
    """Return whether a failed run failed only after its work (the credential expires soon)."""
    return report.error is not None and report.error.kind == "credential-expiring"


def _is_write(service: str, method: str, path: str) -> bool:
    """Return whether a call changes something (a dry run must make none)."""
    if service == "keyvault":
        return method in {"PUT", "PATCH", "DELETE", "POST"}
    if service == "databricks":
        return method == "DELETE" or (method == "POST" and not path.startswith("/oidc/"))
    if service in {"prequel", "fivetran"}:
        return method in {"PUT", "PATCH", "DELETE"} or (method == "POST" and "test" not in path)
    if service in {"devops", "github"}:
        return method in {"PUT", "PATCH", "DELETE"}
    return False  # Entra and the identity endpoint issue tokens; a receiver's event is in its body


async def simulate(
    settings: Settings,
    *,
    watch: Callable[[Emulators], None] | None = None,
    script: Callable[[Simulation], None] | None = None,
) -> Result:
    """Run one simulation on emulators of its own.

    *watch* sees the emulators before anything is issued (the session's secret scan registers
    them); *script* adds events to the schedule (``Simulation.at``) once day 0 is known.
    """
    with Emulators() as emu, _own_logs() as log:
        if watch is not None:
            watch(emu)
        async with World.open(emu) as world:
            sim = Simulation(emu, world, settings, log)
            result = await sim.run(script)
    result.targets = len(sim.tracked)
    return result
