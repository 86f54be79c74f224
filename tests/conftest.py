"""Shared fixtures: one set of emulators per session, a rotator identity, a world helper.

Every log record of the whole session is collected; at the end the session fails if any value an
emulator issued (PAT, client secret, OAuth secret, API key, access token) appears in one of them
or in any CLI output the tests captured (see ``hygiene``).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import pytest

from emulators.harness import Emulators
from emulators.scenario import SeededTarget
from tests import hygiene, matrix, simulation
from tests.functions import configure
from tests.world import World

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


def pytest_configure(config: pytest.Config) -> None:
    hygiene.start_collecting()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in (matrix.summary(), simulation.summary()):
        if line:
            terminalreporter.ensure_newline()
            terminalreporter.write_line(line, bold=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = hygiene.leaks()
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"SECRET HYGIENE: {len(leaks)} leak(s):", red=True)
            for where in leaks[:20]:
                reporter.write_line(f"  {where}", red=True)
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    count, secrets = hygiene.scanned(), hygiene.issued()
    if secrets and not count:  # secrets were issued but nothing was seen: the scan is broken
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter is not None:
            reporter.write_line(
                f"SECRET HYGIENE: {secrets} secrets were issued but 0 log records/outputs were "
                "collected: the scan saw nothing, so it proves nothing",
                red=True,
            )
        return
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(
            f"secret hygiene: {count} log records/outputs scanned for {secrets} issued secrets, "
            "no secret found"
            if secrets
            else "secret hygiene: no secret was issued in this session; nothing to scan for"
        )


@pytest.fixture(scope="session")
def emu() -> Iterator[Emulators]:
    with Emulators() as emulators:
        hygiene.watch(emulators.secrets)
        # ManagedIdentityCredential finds the (emulated) App Service identity endpoint here.
        os.environ.update(emulators.identity_env())
        yield emulators


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "emu" in request.fixturenames:
        request.getfixturevalue("emu").faults.clear()


@pytest.fixture(scope="session")
async def world(emu: Emulators) -> AsyncIterator[World]:
    async with World.open(emu) as w:
        yield w


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


@pytest.fixture(scope="session")
def _azurite_process() -> Iterator[object]:
    from tests.azurite import start

    running = start()
    yield running
    running.stop()


@pytest.fixture
def azurite(_azurite_process):  # type: ignore[no-untyped-def]
    """The session's Azurite, checked to be alive before each test that uses it."""
    _azurite_process.check()
    return _azurite_process


@pytest.fixture
def app(world: World, azurite, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Configure the app for the targets a test seeds: ``app(seeded, ..., **settings)``."""

    def setup(*seeded: SeededTarget, storage: bool = True, **settings: str) -> None:
        conn = azurite.connection_string if storage else None
        configure(monkeypatch, world.emu, conn, *seeded, **settings)

    return setup


@pytest.fixture
def real_time(emu: Emulators) -> Iterator[None]:
    """Put the emulators' clock on real time: a CLI run signs webhooks with the machine's clock."""
    offset = emu.clock.offset
    emu.clock.advance(-offset)
    yield
    emu.clock.advance(offset)
