"""The ``github-actions-secret`` consumer end to end: the CLI and the engine against the emulators.

The GitHub emulator holds a real libsodium key pair per repository and environment, so what the
rotator sealed is opened here and compared with the PAT Databricks issued.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from typing import TYPE_CHECKING, Any

import pytest

from emulators.scenario import Consumer, SeededTarget
from rotation.config import parse_config
from rotation.engine import Outcome
from rotation.errors import ConfigError
from tests.consumers import one_updater_config
from tests.invariants import held_pat, rotator_tokens, violations
from tests.test_cli import _cli, _config
from tests.test_doctor import _doctor

if TYPE_CHECKING:
    from pathlib import Path

    from tests.world import World

KIND = "github-actions-secret"
PUT = r"/repos/octo-org/{repo}/actions/secrets/DATABRICKS_TOKEN"
KEY = r"/repos/octo-org/{repo}/actions/secrets/public-key"


def _seed(world: World) -> tuple[SeededTarget, str]:
    seeded = world.target(consumers=(KIND,))
    return seeded, seeded.table["updaters"][0]["repo"]


def _held(world: World, seeded: SeededTarget) -> str:
    (consumer,) = seeded.consumers
    return held_pat(world.emu, consumer.kind, consumer.id)


def _human(world: World, seeded: SeededTarget) -> str:
    token = world.emu.databricks.get(seeded.human_token_id or "")
    assert token is not None
    return token.value


def test_the_cli_rotates_and_the_repository_secret_holds_the_new_pat(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded, _ = _seed(world)
    first = _cli(emu, tmp_path, _config(emu, seeded), "rotate", "--json")
    assert first.returncode == 0, first.stderr
    (report,) = json.loads(first.stdout)["targets"]
    assert report["outcome"] == "rotated"
    (consumer,) = report["consumers"]
    assert (
        consumer["name"]
        == "github-actions-secret:octo-org/" + f"{seeded.name}-repo/DATABRICKS_TOKEN"
    )
    assert (consumer["tested"], consumer["pushed"], consumer["confirmed"]) == (False, True, True)
    (minted,) = rotator_tokens(emu, seeded)
    assert _held(world, seeded) == minted.value  # the sealed box opened to the new PAT
    second = _cli(emu, tmp_path, _config(emu, seeded), "rotate", "--force", "--json")
    assert second.returncode == 0, second.stderr
    assert not emu.databricks.is_live(minted.value)
    (now,) = rotator_tokens(emu, seeded)
    assert _held(world, seeded) == now.value
    assert violations(emu, seeded) == []


async def test_an_environment_secret_is_rotated_and_the_repository_one_left_alone(
    world: World,
) -> None:
    emu = world.emu
    seeded, repo = _seed(world)
    emu.github.add_environment("octo-org", repo, "production")
    emu.github.set_secret("octo-org", repo, "DATABRICKS_TOKEN", _human(world, seeded), "production")
    seeded.table["updaters"][0]["environment"] = "production"
    seeded.consumers[0] = Consumer(KIND, f"octo-org/{repo}/production/DATABRICKS_TOKEN")
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.ROTATED, report.error
    (minted,) = rotator_tokens(emu, seeded)
    assert _held(world, seeded) == minted.value
    assert emu.github.secret("octo-org", repo, "DATABRICKS_TOKEN").value == _human(world, seeded)
    assert report.consumers[0].name.endswith(f"{repo}:production/DATABRICKS_TOKEN")


def _bad_token(world: World, seeded: SeededTarget, repo: str) -> None:
    unknown = "github_pat_" + secrets.token_urlsafe(40)  # GitHub never issued it
    world.emu.secrets.add(unknown, "github_token")  # scanned for in every output, like the others
    world.emu.keyvault.set_secret(f"{seeded.name}-github-token", unknown)


def _no_access(world: World, seeded: SeededTarget, repo: str) -> None:
    token = world.emu.github.add_token(["octo-org/someone-elses"])
    world.emu.keyvault.set_secret(f"{seeded.name}-github-token", token)


def _wrong_name(world: World, seeded: SeededTarget, repo: str) -> None:
    seeded.table["updaters"][0]["secret_name"] = "DATABRICKS_TOKN"


@pytest.mark.parametrize(
    ("breaker", "said"),
    [
        (_bad_token, "rejected the token in Key Vault secret"),
        (_no_access, "cannot see it"),
        (_wrong_name, "DATABRICKS_TOKN of octo-org/"),
    ],
    ids=["bad token", "token without the repository", "mistyped secret name"],
)
def test_a_bad_setting_fails_preflight_in_one_line_and_nothing_is_minted(
    world: World, tmp_path: Path, breaker: Any, said: str
) -> None:
    emu = world.emu
    seeded, repo = _seed(world)
    breaker(world, seeded, repo)
    done = _cli(emu, tmp_path, _config(emu, seeded), "rotate", "--json")
    assert done.returncode == 1
    (report,) = json.loads(done.stdout)["targets"]
    assert report["error"]["step"] == "preflight"
    assert said in report["error"]["message"]
    assert "\n" not in report["error"]["message"]
    assert "Traceback" not in done.stderr
    token = emu.keyvault.latest(f"{seeded.name}-github-token")
    assert token is not None
    assert token.value not in done.stdout + done.stderr
    assert rotator_tokens(emu, seeded) == []  # nothing minted
    assert emu.requests.count("github", "PUT", PUT.format(repo=re.escape(repo))) == 0
    assert _held(world, seeded) == _human(world, seeded)


async def test_a_read_only_token_fails_at_push_and_the_old_pat_stays(world: World) -> None:
    emu = world.emu
    seeded, repo = _seed(world)
    emu.keyvault.set_secret(
        f"{seeded.name}-github-token", emu.github.add_token([f"octo-org/{repo}"], write=False)
    )
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.FAILED
    assert report.error is not None
    assert report.error.step == "push"
    assert "'Secrets: Read and write'" in report.error.message
    assert _held(world, seeded) == _human(world, seeded)
    assert emu.databricks.is_live(_human(world, seeded))
    assert violations(emu, seeded, settled=False) == []


async def test_a_secondary_rate_limit_is_waited_out_as_github_asks(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    emu = world.emu
    seeded, repo = _seed(world)
    limited = {"Retry-After": "1"}
    emu.faults.add("github", "PUT", PUT.format(repo=re.escape(repo)), status=403, headers=limited)
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.ROTATED, report.error
    assert emu.requests.count("github", "PUT", PUT.format(repo=re.escape(repo))) == 2
    waits = [r.getMessage() for r in caplog.records if r.name == "rotation.retry"]
    assert any(" in 1.0 s " in w and "rate-limited" in w for w in waits), waits
    (minted,) = rotator_tokens(emu, seeded)
    assert _held(world, seeded) == minted.value


async def test_a_rate_limit_longer_than_the_cap_fails_preflight_without_minting(
    world: World,
) -> None:
    emu = world.emu
    seeded, repo = _seed(world)
    emu.faults.add(
        "github",
        "GET",
        KEY.format(repo=re.escape(repo)),
        status=429,
        headers={"Retry-After": "3600"},
    )
    report = await world.rotate_one(seeded)
    assert report.error is not None
    assert report.error.step == "preflight"
    assert report.error.transient
    assert "rate-limited" in report.error.message
    assert rotator_tokens(emu, seeded) == []


async def test_a_5xx_at_push_keeps_the_old_pat_and_the_next_run_heals(world: World) -> None:
    emu = world.emu
    seeded, repo = _seed(world)
    emu.faults.add("github", "PUT", PUT.format(repo=re.escape(repo)), status=502, times=-1)
    failed = await world.rotate_one(seeded)
    assert failed.outcome is Outcome.FAILED
    assert failed.error is not None
    assert failed.error.step == "push"
    assert _held(world, seeded) == _human(world, seeded)
    assert violations(emu, seeded, settled=False) == []
    emu.faults.clear()
    healed = await world.rotate_one(seeded)
    assert healed.outcome is Outcome.ROTATED, healed.error
    (minted,) = rotator_tokens(emu, seeded)
    assert _held(world, seeded) == minted.value
    assert violations(emu, seeded) == []


async def test_a_put_answered_but_not_saved_fails_the_confirm(world: World) -> None:
    emu = world.emu
    seeded, repo = _seed(world)
    emu.faults.add("github", "PUT", PUT.format(repo=re.escape(repo)), status=204, times=-1)
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.FAILED
    assert report.error is not None
    assert report.error.step == "confirm"
    assert "still shows updated_at" in report.error.message
    assert _held(world, seeded) == _human(world, seeded)
    assert emu.databricks.is_live(_human(world, seeded))


async def test_a_read_that_lags_the_write_is_read_again(world: World) -> None:
    emu = world.emu
    seeded, repo = _seed(world)
    stale = {"name": "DATABRICKS_TOKEN", "created_at": "2000-01-01T00:00:00Z"}
    stale["updated_at"] = stale["created_at"]
    metadata = PUT.format(repo=re.escape(repo))
    emu.faults.add("github", "GET", metadata, status=200, body=stale, skip=2)  # the confirm's read
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.ROTATED, report.error
    assert emu.requests.count("github", "GET", metadata) == 4  # preflight, push, confirm twice
    (minted,) = rotator_tokens(emu, seeded)
    assert _held(world, seeded) == minted.value


def test_doctor_checks_the_token_and_says_github_cannot_test(world: World, tmp_path: Path) -> None:
    seeded, _ = _seed(world)
    code, checks = _doctor(world, tmp_path, seeded)
    assert code == 0, checks
    by_name = {c["check"]: c for c in checks}
    reach = by_name["consumers: endpoint, id and API key"]
    assert reach["ok"] is True
    assert f"{seeded.name}-repo/DATABRICKS_TOKEN" in reach["detail"]
    assert _cli(world.emu, tmp_path, _config(world.emu, seeded), "rotate").returncode == 0
    _, checks = _doctor(world, tmp_path, seeded)
    tested = {c["check"]: c for c in checks}["consumers: the current PAT passes their test"]
    assert tested["ok"] is None
    assert "no consumer can test unsaved values" in tested["detail"]
    _bad_token(world, seeded, "")
    code, checks = _doctor(world, tmp_path, seeded)
    assert code == 1
    failed = {c["check"]: c for c in checks if c["ok"] is False}
    assert "rejected the token" in failed["consumers: endpoint, id and API key"]["detail"]


def _table(**updater: object) -> dict[str, object]:
    base = {
        "kind": KIND,
        "owner": "octo-org",
        "repo": "app",
        "secret_name": "DATABRICKS_TOKEN",
        "token_secret_name": "gh-token",
    }
    return one_updater_config({**base, **updater})


@pytest.mark.parametrize(
    ("updater", "said"),
    [
        ({"api_url": "http://api.github.com"}, "must be an https://host"),
        ({"api_url": "https://user:pw@api.github.com"}, "userinfo"),
        ({"api_url": "https://api.github.com?x=1"}, "query or fragment"),
        ({"secret_name": "GITHUB_TOKEN"}, "start with GITHUB_"),
        ({"secret_name": "1TOKEN"}, "not a GitHub secret name"),
        ({"owner": "octo org"}, "owner"),
        ({"repo": ".."}, "not a repository name"),
        ({"environment": "prod/eu"}, "not an environment name"),
        ({"token_secret_name": "gh_token"}, "not a valid Key Vault secret name"),
        ({"token": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_github_tables_are_refused_with_the_field(
    updater: dict[str, object], said: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_table(**updater))
    text = str(caught.value)
    assert "targets[0].updaters[0]" in text or "targets.0.updaters.0" in text, text
    assert said in text, text
    assert "pw@" not in text  # a password in a URL is never repeated


def test_a_good_github_table_is_accepted() -> None:
    config = parse_config(
        _table(environment="production", api_url="https://ghe.example.com/api/v3/")
    )
    (spec,) = config.targets[0].updaters
    assert spec.kind == KIND
    assert spec.settings.api_url == "https://ghe.example.com/api/v3"  # type: ignore[attr-defined]


# --- GitHub's bad answers, fuzzed: never an unexpected error, never a push after a bad preflight


def _bad_answers() -> list[tuple[str, int, dict[str, Any] | None]]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    values = st.none() | st.booleans() | st.integers(-5, 10**12) | st.text(max_size=60)
    values |= st.sampled_from(
        ["AAAA", base64.b64encode(b"k" * 32).decode(), "2999-01-01T00:00:00Z"]
    )
    bodies = st.none() | st.dictionaries(
        st.sampled_from(["key_id", "key", "updated_at", "message", "name"]), values, max_size=4
    )
    statuses = st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 409, 422, 429, 500, 503])
    examples: list[tuple[str, int, dict[str, Any] | None]] = []

    @settings(
        max_examples=24, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(st.sampled_from(["public-key", "DATABRICKS_TOKEN"]), statuses, bodies)
    def collect(route: str, status: int, body: dict[str, Any] | None) -> None:
        examples.append((route, status, body))

    collect()
    return examples


async def test_bad_github_answers_never_crash_and_a_bad_preflight_never_pushes(
    world: World,
) -> None:
    emu = world.emu
    examples = _bad_answers()
    assert len(examples) >= 20
    preflight_failures = 0
    for route, status, body in examples:
        seeded, repo = _seed(world)
        path = f"/repos/octo-org/{re.escape(repo)}/actions/secrets/{route}"
        emu.faults.add("github", "GET", path, status=status, body=body)
        report = await world.rotate_one(seeded)
        emu.faults.clear()
        assert report.error is None or "unexpected" not in report.error.message, report.error
        if report.error is not None and report.error.step == "preflight":
            preflight_failures += 1
            assert emu.requests.count("github", "PUT", PUT.format(repo=re.escape(repo))) == 0
            assert rotator_tokens(emu, seeded) == []
        assert violations(emu, seeded, settled=report.ok) == [], (route, status, body)
    assert preflight_failures > 5  # the strategy reaches the refusals


async def test_a_put_answered_anything_never_gets_the_old_pat_revoked_unsaved(
    world: World,
) -> None:
    """GitHub's answer to the PUT, fuzzed (the value is not saved): the confirm stops a revoke."""
    emu = world.emu
    examples: list[tuple[str, int, dict[str, Any] | None]] = [
        ("PUT", status, body)
        for status in (200, 201, 202, 204, 400, 404, 409, 422)  # answers that are not retried
        for body in (None, {"message": "Created"})
    ]
    for _, status, body in examples:
        seeded, repo = _seed(world)
        first = await world.rotate_one(seeded)  # a rotator PAT, which a success would revoke
        assert first.ok, first.error
        emu.faults.add("github", "PUT", PUT.format(repo=re.escape(repo)), status=status, body=body)
        report = await world.rotate_one(seeded, force=True)
        emu.faults.clear()
        assert not report.ok, (status, body)  # nothing was saved: never confirmed
        assert report.revoked == []
        assert report.error is not None
        assert "unexpected" not in report.error.message
        assert _held(world, seeded) == _token_value(world, first.token_id)
        assert violations(emu, seeded, settled=False) == [], (status, body)


def _token_value(world: World, token_id: str | None) -> str:
    token = world.emu.databricks.get(token_id or "")
    assert token is not None
    return token.value
