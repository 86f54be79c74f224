"""The ``fivetran-destination`` updater end to end: the real CLI against the emulators.

Fivetran's setup tests really call the Databricks emulator with the saved PAT, so a failed test
here is a PAT Databricks refused while Fivetran tried it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulators.fivetran_state import MASK
from emulators.scenario import SeededTarget
from rotation.errors import RotationError
from tests import hygiene
from tests.consumers import fails_then_heals, refused_table, rotate_cli
from tests.invariants import held_pat, rotator_tokens, violations
from tests.test_cli import _cli, _config
from tests.test_fuzz import SLOW_FUZZ, json_values
from tests.world import FAST, World

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from emulators.fivetran_state import Destination

KIND = "fivetran-destination"
ME = "/api/2.0/preview/scim/v2/Me"


def _seed(world: World) -> tuple[SeededTarget, Destination]:
    seeded = world.target(consumers=(KIND,))
    return seeded, world.emu.fivetran.destination(seeded.consumers[0].id)


def _rotated_once(world: World, tmp_path: Path) -> tuple[SeededTarget, Destination, str]:
    """Seed and rotate once: the destination holds a rotator PAT (its value is returned)."""
    seeded, destination = _seed(world)
    assert rotate_cli(world, tmp_path, seeded)["exit"] == 0
    (first,) = rotator_tokens(world.emu, seeded)
    assert destination.personal_access_token == first.value
    return seeded, destination, first.value


@pytest.fixture
def limit(world: World) -> Iterator[None]:
    state = world.emu.fivetran
    yield
    state.setup_tests_per_minute = 250
    state.reset_setup_test_window()


def test_rotation_saves_then_tests_the_new_pat(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded, destination = _seed(world)
    first = rotate_cli(world, tmp_path, seeded)
    assert first["exit"] == 0, first["error"]
    (minted,) = rotator_tokens(emu, seeded)
    assert held_pat(emu, KIND, destination.id) == minted.value
    (consumer,) = first["consumers"]
    assert (consumer["tested"], consumer["confirmed"], consumer["restored"]) == (False, True, False)
    (test,) = [t for t in emu.fivetran.tests() if t.personal_access_token == minted.value]
    assert (test.trigger, test.ok) == ("test", True)

    second = rotate_cli(world, tmp_path, seeded, "--force")
    assert second["exit"] == 0, second["error"]
    assert second["revoked"] == [minted.token_id]
    (live,) = rotator_tokens(emu, seeded)
    assert destination.personal_access_token == live.value
    assert MASK not in destination.history  # a masked value is never written back
    assert violations(emu, seeded) == []


def test_a_failed_setup_test_puts_the_previous_pat_back(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded, destination, previous = _rotated_once(world, tmp_path)
    emu.faults.add("databricks", "GET", ME, status=401, skip=1)  # 0: the rotator's own verify
    failed = rotate_cli(world, tmp_path, seeded, "--force")
    assert failed["exit"] == 1
    assert failed["error"]["step"] == "confirm"
    assert "failed its setup tests" in failed["error"]["message"]
    (consumer,) = failed["consumers"]
    assert (consumer["pushed"], consumer["confirmed"], consumer["restored"]) == (True, False, True)
    new = destination.history[-2]
    assert new != previous
    assert destination.personal_access_token == previous  # put back, and still alive
    assert emu.databricks.is_live(previous)
    assert violations(emu, seeded, settled=False) == []
    emu.faults.clear()
    healed = rotate_cli(world, tmp_path, seeded)
    assert healed["exit"] == 0, healed["error"]
    (live,) = rotator_tokens(emu, seeded)
    assert destination.personal_access_token == live.value
    assert violations(emu, seeded) == []


def test_a_short_retry_after_is_waited(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded, destination = _seed(world)
    test_path = f"/v1/destinations/{destination.id}/test"
    emu.faults.add("fivetran", "POST", test_path, status=429, headers={"Retry-After": "1"})
    before = emu.requests.count("fivetran", "POST", test_path)
    report = rotate_cli(world, tmp_path, seeded)
    assert report["exit"] == 0, report["error"]
    assert emu.requests.count("fivetran", "POST", test_path) == before + 2
    (live,) = rotator_tokens(emu, seeded)
    assert destination.personal_access_token == live.value


def test_the_setup_test_limit_fails_the_run_and_restores_then_heals(
    world: World, tmp_path: Path, limit: None
) -> None:
    """Over the limit Fivetran asks for a minute: too long to wait, so the run fails safely."""
    del limit
    emu = world.emu
    seeded, destination, previous = _rotated_once(world, tmp_path)
    emu.fivetran.setup_tests_per_minute = 1
    emu.fivetran.reset_setup_test_window()
    assert emu.fivetran.admit_setup_test() is None  # someone else used this minute's test
    failed = rotate_cli(world, tmp_path, seeded, "--force")
    assert failed["exit"] == 1
    assert "answered 429" in failed["error"]["message"]
    assert failed["error"]["transient"] is True
    assert failed["consumers"][0]["restored"] is True
    assert destination.personal_access_token == previous
    assert emu.databricks.is_live(previous)
    emu.clock.advance(61)
    healed = rotate_cli(world, tmp_path, seeded)
    assert healed["exit"] == 0, healed["error"]
    assert violations(emu, seeded) == []


def test_a_5xx_on_the_save_leaves_the_old_pat_and_the_next_run_heals(
    world: World, tmp_path: Path
) -> None:
    seeded, destination = _seed(world)
    path = f"/v1/destinations/{destination.id}"
    world.emu.faults.add("fivetran", "PATCH", path, status=503, times=-1)
    fails_then_heals(world, tmp_path, seeded, "answered 503")


def test_a_revoked_api_key_fails_the_preflight_before_anything_is_minted(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded, destination = _seed(world)
    key = emu.keyvault.latest(f"{seeded.name}-fivetran-key")
    assert key is not None
    emu.fivetran.revoke_api_key(key.value)
    report = rotate_cli(world, tmp_path, seeded)
    assert report["exit"] == 1
    assert report["error"]["step"] == "preflight"
    message = report["error"]["message"]
    assert "\n" not in message
    assert "answered 401" in message
    assert f"{seeded.name}-fivetran-key" in message
    assert rotator_tokens(emu, seeded) == []
    assert len(destination.history) == 1


def test_doctor_reads_the_destination(world: World, tmp_path: Path) -> None:
    seeded, destination = _seed(world)
    done = _cli(world.emu, tmp_path, _config(world.emu, seeded), "doctor", "--json")
    assert "Traceback" not in done.stderr, done.stderr
    checks = {c["check"]: c for c in json.loads(done.stdout)["checks"]}
    found = checks["consumers: endpoint, id and API key"]
    assert found["ok"] is True
    assert f"{KIND}:{destination.id}" in found["detail"]
    key = world.emu.keyvault.latest(f"{seeded.name}-fivetran-key")
    assert key is not None
    world.emu.fivetran.revoke_api_key(key.value)
    done = _cli(world.emu, tmp_path, _config(world.emu, seeded), "doctor", "--json")
    checks = {c["check"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["consumers: endpoint, id and API key"]["ok"] is False
    assert "answered 401" in checks["consumers: endpoint, id and API key"]["detail"]
    assert len(destination.history) == 1


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"api_url": "https://user@api.fivetran.com"}, "userinfo"),
        ({"destination_id": "a/b"}, "destination_id"),
        ({"api_secret_secret_name": None}, "api_secret_secret_name"),
        ({"api_key_secret_name": "a_b"}, "api_key_secret_name"),
        ({"run_setup_tests": True}, "run_setup_tests"),
    ],
)
def test_bad_tables_are_refused_offline_in_one_line(
    world: World, tmp_path: Path, change: dict[str, Any], needle: str
) -> None:
    assert needle in refused_table(world, tmp_path, KIND, change)


async def test_bad_answers_never_crash_and_never_save(world: World) -> None:
    """Whatever the read and the setup test answer: a RotationError or a pass, and no PATCH."""
    from rotation.secret import Secret
    from rotation.updaters import UpdaterContext
    from rotation.updaters.registry import plugin

    emu = world.emu
    seeded, destination = _seed(world)
    spec = world.config(seeded).targets[0].updaters[0]
    answers: list[tuple[str, int, Any]] = []

    @SLOW_FUZZ
    @given(
        st.sampled_from(["GET", "POST"]),
        st.sampled_from([200, 400, 401, 404, 406, 429, 500]),
        json_values,
    )
    def collect(method: str, status: int, body: Any) -> None:
        answers.append((method, status, body))

    collect()
    one = f"/v1/destinations/{destination.id}"
    patches = emu.requests.count("fivetran", "PATCH")
    async with world.runtime(world.config(seeded)) as rt:
        updater = plugin(KIND).build(spec.settings, UpdaterContext(rt.http, rt.store, FAST))
        for method, status, body in answers:
            shaped = body if isinstance(body, dict) else {"data": body}
            path = one if method == "GET" else f"{one}/test"
            emu.faults.add("fivetran", method, path, status=status, body=shaped, times=-1)
            try:
                if method == "GET":
                    await updater.preflight()
                else:
                    await updater.confirm(Secret("unused"))
            except RotationError as exc:
                hygiene.record_text("fivetran bad answer", str(exc))
            emu.faults.clear()
    assert emu.requests.count("fivetran", "PATCH") == patches
    assert len(destination.history) == 1


async def test_a_masked_value_is_never_saved(world: World) -> None:
    """Should Key Vault ever hold the mask as the previous PAT, it is not put back."""
    from rotation.errors import ConsumerError
    from rotation.secret import Secret
    from rotation.updaters import UpdaterContext
    from rotation.updaters.registry import plugin

    emu = world.emu
    seeded, destination = _seed(world)
    spec = world.config(seeded).targets[0].updaters[0]
    patches = emu.requests.count("fivetran", "PATCH")
    async with world.runtime(world.config(seeded)) as rt:
        updater = plugin(KIND).build(spec.settings, UpdaterContext(rt.http, rt.store, FAST))
        assert hasattr(updater, "restore")
        with pytest.raises(ConsumerError, match="masked"):
            await updater.restore(Secret(MASK))
    assert emu.requests.count("fivetran", "PATCH") == patches
    assert MASK not in destination.history
