"""``doctor`` and ``grant``: every prerequisite of the manual procedure checked, read-only."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from emulators.scenario import SeededTarget
from tests.functions import Http, configure
from tests.invariants import rotator_tokens
from tests.test_cli import _cli, _config
from tests.world import World

CREATE = "/api/2.0/token/create"


def _with_admin(world: World, seeded: SeededTarget) -> SeededTarget:
    """Store a workspace admin's PAT in Key Vault and name it in the target's table."""
    admin = world.emu.databricks.add_admin_user(f"admin-{seeded.name}@example.com")
    world.emu.keyvault.set_secret(f"{seeded.name}-admin", admin)
    seeded.table = {**seeded.table, "admin_token_secret_name": f"{seeded.name}-admin"}
    return seeded


@pytest.fixture
def workspace_conf(world: World) -> Iterator[object]:
    """The workspace settings, restored after the test (the emulators are shared)."""
    conf = world.emu.databricks.conf
    enabled, maximum = conf.tokens_enabled, conf.max_token_lifetime_days
    yield conf
    conf.tokens_enabled, conf.max_token_lifetime_days = enabled, maximum


def _doctor(world: World, tmp_path: Path, seeded: SeededTarget, *args: str) -> tuple[int, list]:
    done = _cli(world.emu, tmp_path, _config(world.emu, seeded), "doctor", "--json", *args)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)["checks"]


def test_a_good_target_passes_every_check_and_nothing_is_minted(
    world: World, tmp_path: Path
) -> None:
    seeded = _with_admin(world, world.target())
    assert _cli(world.emu, tmp_path, _config(world.emu, seeded), "rotate").returncode == 0
    world.emu.requests.clear()
    code, checks = _doctor(world, tmp_path, seeded)
    assert code == 0, checks
    assert all(c["ok"] is True for c in checks), checks
    names = {c["check"] for c in checks}
    assert {
        "Key Vault: the principal's credential",
        "principal gets a token",
        "service principal in the workspace",
        "PATs enabled, CAN_USE granted",
        "token quota",
        "workspace: personal access tokens enabled",
        "workspace: lifetime within maxTokenLifetimeDays",
        "workspace: CAN_USE on tokens",
        "consumers: endpoint, id and API key",
        "consumers: the current PAT passes their test",
    } <= names
    assert world.emu.requests.count("databricks", "POST", CREATE) == 0
    assert world.emu.requests.count("keyvault", "PUT") == 0
    assert world.emu.requests.count("keyvault", "PATCH") == 0


def test_without_an_admin_the_admin_checks_are_skipped_not_failed(
    world: World, tmp_path: Path
) -> None:
    code, checks = _doctor(world, tmp_path, world.target())
    assert code == 0
    (skipped,) = [c for c in checks if c["ok"] is None]
    assert skipped["detail"].startswith("skipped: needs an admin")


Breaker = Callable[[World, SeededTarget, object], None]


def _tokens_disabled(world: World, seeded: SeededTarget, conf: object) -> None:
    conf.tokens_enabled = False  # type: ignore[attr-defined]


def _no_can_use(world: World, seeded: SeededTarget, conf: object) -> None:
    world.emu.databricks.set_can_use(seeded.application_id, False)


def _bad_secret(world: World, seeded: SeededTarget, conf: object) -> None:
    world.emu.keyvault.set_secret(f"{seeded.name}-sp-credential", "not-the-client-secret")


def _not_in_workspace(world: World, seeded: SeededTarget, conf: object) -> None:
    world.emu.databricks.remove_from_workspace(seeded.application_id)


def _lifetime_too_long(world: World, seeded: SeededTarget, conf: object) -> None:
    conf.max_token_lifetime_days = 30  # type: ignore[attr-defined]


def _quota(world: World, seeded: SeededTarget, conf: object) -> None:
    for _ in range(600):
        world.emu.databricks.mint(seeded.application_id, 86_400, "someone's")


def _prequel_key(world: World, seeded: SeededTarget, conf: object) -> None:
    world.emu.keyvault.set_secret(f"{seeded.name}-prequel-key", "sk_prod_notthekey12345")


def _missing_secret(world: World, seeded: SeededTarget, conf: object) -> None:
    world.emu.keyvault.delete(f"{seeded.name}-sp-credential")


@pytest.mark.parametrize(
    ("breaker", "check", "fix"),
    [
        (_tokens_disabled, "PATs enabled, CAN_USE granted", "enableTokensConfig"),
        (_no_can_use, "PATs enabled, CAN_USE granted", "CAN_USE"),
        (_bad_secret, "principal gets a token", "AADSTS7000215"),
        (_not_in_workspace, "service principal in the workspace", "Import"),
        (
            _lifetime_too_long,
            "workspace: lifetime within maxTokenLifetimeDays",
            "lower lifetime_days",
        ),
        (_quota, "token quota", "of 600 live tokens: revoke unused ones"),
        (_prequel_key, "consumers: endpoint, id and API key", "prequel"),
        (_missing_secret, "Key Vault: the principal's credential", "does not exist"),
    ],
    ids=lambda v: getattr(v, "__name__", None) or "",
)
def test_each_troubleshooting_case_gives_its_failed_line_with_the_fix(  # noqa: PLR0917
    world: World, tmp_path: Path, workspace_conf: object, breaker: Breaker, check: str, fix: str
) -> None:
    seeded = _with_admin(world, world.target())
    breaker(world, seeded, workspace_conf)
    world.emu.requests.clear()
    code, checks = _doctor(world, tmp_path, seeded)
    assert code == 1
    failed = [c for c in checks if c["ok"] is False]
    assert any(c["check"] == check and fix.lower() in c["detail"].lower() for c in failed), (
        json.dumps(checks, indent=1)
    )
    assert world.emu.requests.count("databricks", "POST", CREATE) == 0  # nothing minted
    assert rotator_tokens(world.emu, seeded) == []
    human = _cli(world.emu, tmp_path, _config(world.emu, seeded), "doctor")
    assert f"✗ {seeded.name}: {check}" in human.stdout


def test_grant_makes_a_target_rotate_and_changes_nothing_twice(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    other = world.target()
    other_token = emu.databricks.mint(other.application_id, 86_400, "other's")
    seeded = _with_admin(world, world.target())
    emu.databricks.set_can_use(seeded.application_id, False)
    config = _config(emu, seeded)
    assert _cli(emu, tmp_path, config, "rotate").returncode == 1
    first = _cli(emu, tmp_path, config, "grant", "--target", seeded.name)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"granted CAN_USE on tokens to service principal {seeded.application_id}" in first.stdout
    emu.requests.clear()
    second = _cli(emu, tmp_path, config, "grant", "--target", seeded.name)
    assert "nothing to do" in second.stdout
    assert emu.requests.count("databricks", "PATCH") == 0
    assert emu.requests.count("databricks", "PUT") == 0
    assert _cli(emu, tmp_path, config, "rotate").returncode == 0
    assert emu.databricks.is_live(other_token.value)  # other principals untouched
    principal = emu.databricks.principal(other.application_id)
    assert principal is not None
    assert principal.can_use


def test_grant_without_an_admin_says_how_to_give_one(world: World, tmp_path: Path) -> None:
    seeded = world.target()
    done = _cli(world.emu, tmp_path, _config(world.emu, seeded), "grant", "--target", seeded.name)
    assert done.returncode == 1
    assert "admin_token_secret_name" in done.stdout


async def test_doctor_over_http(world: World, azurite, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import azure.functions as func

    from tests.functions import function

    seeded = world.target()
    configure(monkeypatch, world.emu, None, seeded)
    req = func.HttpRequest(
        "GET",
        f"/api/rotations/{seeded.name}/doctor",
        route_params={"target": seeded.name},
        body=b"",
    )
    resp = await function("doctor_target")(req)
    answer = Http(resp.status_code, json.loads(resp.get_body()))
    assert answer.status == 200
    assert answer.body["ok"] is True
    assert any(c["check"] == "principal gets a token" for c in answer.body["checks"])
