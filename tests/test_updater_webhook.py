"""The ``webhook`` consumer end to end: the CLI and the engine against the receiver emulator.

Also the receiver example shipped in ``docs/examples/webhook_receiver.py``, run for real on
127.0.0.1 (its own TLS certificate) against a rotation made by the CLI.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import secrets
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from emulators.dbprobe import split_host
from emulators.server import ServerThread
from emulators.tls import LoopbackTLS
from rotation.config import parse_config
from rotation.engine import Outcome
from rotation.errors import ConfigError
from tests import hygiene
from tests.consumers import one_updater_config
from tests.invariants import rotator_tokens, violations
from tests.test_cli import _cli, _config
from tests.test_doctor import _doctor

if TYPE_CHECKING:
    from types import ModuleType

    from emulators.harness import Emulators
    from emulators.scenario import SeededTarget
    from emulators.webhook_state import Receiver
    from tests.world import World

ROOT = Path(__file__).resolve().parent.parent


def _seed(world: World) -> tuple[SeededTarget, Receiver]:
    seeded = world.target(consumers=("webhook",))
    return seeded, world.emu.webhook.receiver(seeded.name)


def _hook(seeded: SeededTarget) -> str:
    return f"/hooks/{re.escape(seeded.name)}"


def _human(world: World, seeded: SeededTarget) -> str:
    token = world.emu.databricks.get(seeded.human_token_id or "")
    assert token is not None
    return token.value


def _new_whsec(emu: Emulators) -> str:
    value = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    emu.secrets.add(value, "webhook_secret")  # scanned for like every issued secret
    return value


def test_the_cli_rotates_and_the_receiver_holds_the_new_pat(
    world: World, tmp_path: Path, real_time: None
) -> None:
    emu = world.emu
    seeded, receiver = _seed(world)
    done = _cli(emu, tmp_path, _config(emu, seeded), "rotate", "--json")
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)["targets"]
    (consumer,) = report["consumers"]
    assert (consumer["tested"], consumer["pushed"], consumer["confirmed"]) == (True, True, True)
    (minted,) = rotator_tokens(emu, seeded)
    assert receiver.pat == minted.value
    kinds = [(e.type, e.status) for e in receiver.events]
    assert kinds == [("pat.test", 422), ("pat.test", 200), ("pat.rotated", 200)]  # made-up first
    assert receiver.events[1].pat == minted.value
    again = _cli(emu, tmp_path, _config(emu, seeded), "rotate", "--force", "--json")
    assert again.returncode == 0, again.stderr
    assert not emu.databricks.is_live(minted.value)
    (now,) = rotator_tokens(emu, seeded)
    assert receiver.pat == now.value
    assert violations(emu, seeded) == []


@pytest.fixture(scope="module")
def other_workspace(emu: Emulators) -> str:
    """A second workspace where the targets' principals do not exist."""
    return emu.add_workspace()[1]


async def test_a_receiver_that_cannot_use_the_pat_stops_the_rotation_before_any_push(
    world: World, other_workspace: str
) -> None:
    emu = world.emu
    seeded, receiver = _seed(world)
    receiver.host, receiver.port = split_host(other_workspace)  # its workspace refuses the SP
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.FAILED
    assert report.error is not None
    assert (report.error.step, report.error.kind) == ("test", "consumer-rejected-token")
    assert "tried the new PAT without saving it and it failed" in report.error.message
    assert [e.type for e in receiver.events] == ["pat.test", "pat.test"]  # no pat.rotated
    assert receiver.pat == _human(world, seeded)
    assert emu.databricks.is_live(_human(world, seeded))
    assert violations(emu, seeded, settled=False) == []


def _wrong_secret(world: World, seeded: SeededTarget) -> None:
    world.emu.keyvault.set_secret(f"{seeded.name}-webhook-secret", _new_whsec(world.emu))


def _not_whsec(world: World, seeded: SeededTarget) -> None:
    world.emu.keyvault.set_secret(f"{seeded.name}-webhook-secret", "not-a-signing-secret")


def _says_yes_to_anything(world: World, seeded: SeededTarget) -> None:
    world.emu.faults.add("webhook", "POST", _hook(seeded), status=200, body={"ok": True})


def _no_receiver(world: World, seeded: SeededTarget) -> None:
    seeded.table["updaters"][0]["url"] += "-typo"


@pytest.mark.parametrize(
    ("breaker", "said"),
    [
        (_wrong_secret, "refused the signature (401"),
        (_not_whsec, "does not hold a Standard Webhooks signing secret"),
        (_says_yes_to_anything, "answered that a made-up PAT works"),
        (_no_receiver, "has no receiver there (404"),
    ],
    ids=["wrong signing secret", "not a whsec secret", "says yes to anything", "wrong url"],
)
async def test_a_bad_receiver_setup_fails_preflight_and_nothing_is_minted(
    world: World, breaker: Any, said: str
) -> None:
    seeded, receiver = _seed(world)
    breaker(world, seeded)
    report = await world.rotate_one(seeded)
    assert report.error is not None
    assert report.error.step == "preflight"
    assert said in report.error.message
    assert "\n" not in report.error.message
    assert rotator_tokens(world.emu, seeded) == []
    assert receiver.pat == _human(world, seeded)


async def test_a_5xx_on_push_keeps_the_old_pat_and_the_next_run_heals(world: World) -> None:
    emu = world.emu
    seeded, receiver = _seed(world)
    emu.faults.add("webhook", "POST", _hook(seeded), status=503, skip=2, times=-1)
    failed = await world.rotate_one(seeded)
    assert failed.outcome is Outcome.FAILED
    assert failed.error is not None
    assert failed.error.step == "push"
    assert receiver.pat == _human(world, seeded)
    assert violations(emu, seeded, settled=False) == []
    emu.faults.clear()
    healed = await world.rotate_one(seeded)
    assert healed.outcome is Outcome.ROTATED, healed.error
    (minted,) = rotator_tokens(emu, seeded)
    assert receiver.pat == minted.value
    assert violations(emu, seeded) == []


async def test_a_lost_answer_is_retried_with_the_same_webhook_id(world: World) -> None:
    seeded, receiver = _seed(world)
    world.emu.faults.add("webhook", "POST", _hook(seeded), mode="drop_after", skip=2)
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.ROTATED, report.error
    rotated = [e for e in receiver.events if e.type == "pat.rotated" or e.replayed]
    assert [e.replayed for e in rotated] == [False, True]
    assert rotated[0].webhook_id == rotated[1].webhook_id  # the receiver answered it once


async def test_a_rate_limit_is_waited_out_as_the_receiver_asks(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    seeded, receiver = _seed(world)
    world.emu.faults.add(
        "webhook", "POST", _hook(seeded), status=429, headers={"Retry-After": "1"}, skip=1
    )
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.ROTATED, report.error
    waits = [r.getMessage() for r in caplog.records if r.name == "rotation.retry"]
    assert any(" in 1.0 s " in w and "429" in w for w in waits), waits
    (minted,) = rotator_tokens(world.emu, seeded)
    assert receiver.pat == minted.value


def test_doctor_checks_the_receiver_and_tests_the_current_pat(
    world: World, tmp_path: Path, real_time: None
) -> None:
    seeded, receiver = _seed(world)
    assert _cli(world.emu, tmp_path, _config(world.emu, seeded), "rotate").returncode == 0
    held, count = receiver.pat, len(receiver.events)
    code, checks = _doctor(world, tmp_path, seeded)
    assert code == 0, checks
    by_name = {c["check"]: c for c in checks}
    assert by_name["consumers: endpoint, id and API key"]["ok"] is True
    tested = by_name["consumers: the current PAT passes their test"]
    assert tested["ok"] is True
    assert "webhook:127.0.0.1:" in tested["detail"]
    assert [e.type for e in receiver.events[count:]] == ["pat.test", "pat.test"]
    assert receiver.pat == held  # doctor saved nothing
    _wrong_secret(world, seeded)
    code, checks = _doctor(world, tmp_path, seeded)
    assert code == 1
    failed = {c["check"]: c for c in checks if c["ok"] is False}
    assert "refused the signature" in failed["consumers: endpoint, id and API key"]["detail"]


def _table(**updater: object) -> dict[str, object]:
    base = {"kind": "webhook", "url": "https://hooks.example.com/pat", "signing_secret_name": "s"}
    return one_updater_config({**base, **updater})


@pytest.mark.parametrize(
    ("updater", "said"),
    [
        ({"url": "http://hooks.example.com/pat"}, "must be an https://host"),
        ({"url": "https://me:hunter2@hooks.example.com/pat"}, "userinfo"),
        ({"url": "https://hooks.example.com/pat#x"}, "query or fragment"),
        ({"signing_secret_name": "a_b"}, "not a valid Key Vault secret name"),
        ({"signing_secret": "whsec_x"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_webhook_tables_are_refused_with_the_field(
    updater: dict[str, object], said: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_table(**updater))
    text = str(caught.value)
    assert "updaters" in text, text
    assert said in text, text
    assert "hunter2" not in text


# --- the receiver example of docs/webhook-receiver.md, for real -------------------------------


def _example() -> ModuleType:
    path = ROOT / "docs" / "examples" / "webhook_receiver.py"
    spec = importlib.util.spec_from_file_location("webhook_receiver_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documented_example_receiver_takes_a_real_rotation(
    world: World, tmp_path: Path, real_time: None
) -> None:
    emu = world.emu
    seeded = world.target(consumers=())
    example = _example()
    store = example.PatStore(_human(world, seeded))
    whsec = _new_whsec(emu)
    emu.keyvault.set_secret(f"{seeded.name}-example-hook", whsec)
    trust_emulators = httpx.AsyncClient(verify=ssl.create_default_context(cafile=emu.ca_path))
    app = example.build_app(whsec, emu.databricks_url, store, trust_emulators)
    tls, holder = LoopbackTLS.create()
    server = ServerThread(app, tls, "example-receiver")
    server.begin()
    try:
        server.wait_ready()
        bundle = tmp_path / "cas.pem"
        bundle.write_text(emu.ca_path.read_text() + tls.ca_path.read_text())
        hook = {
            "kind": "webhook",
            "url": f"{server.url}/",
            "signing_secret_name": f"{seeded.name}-example-hook",
        }
        seeded.table["updaters"] = [hook]
        config = _config(emu, seeded)
        env = {"ROTATION_CA_FILE": str(bundle)}
        first = _cli(emu, tmp_path, config, "rotate", "--json", env=env)
        assert first.returncode == 0, first.stdout + first.stderr
        (minted,) = rotator_tokens(emu, seeded)
        assert store.pat == minted.value
        again = _cli(emu, tmp_path, config, "rotate", "--force", "--json", env=env)
        assert again.returncode == 0, again.stdout + again.stderr
        (now,) = rotator_tokens(emu, seeded)
        assert store.pat == now.value
        assert not emu.databricks.is_live(minted.value)
        _speaks_the_protocol(server.url, tls, whsec, store)
    finally:
        server.signal_stop()
        server.join()
        holder.cleanup()


def _speaks_the_protocol(url: str, tls: LoopbackTLS, whsec: str, store: Any) -> None:
    """The example's 400, 401, 422 and its answer to a repeated webhook-id."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    body = json.dumps({"type": "pat.rotated", "timestamp": "x", "data": {"pat": "dapi-nope"}})
    signed = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(whsec).sign("msg_1", now, body),
    }
    held = store.pat
    with httpx.Client(verify=tls.client_context()) as client:
        assert client.post(f"{url}/", content=body).status_code == 400
        forged = {**signed, "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}
        assert client.post(f"{url}/", content=body, headers=forged).status_code == 401
        test = body.replace("pat.rotated", "pat.test")
        probe = {**signed, "webhook-id": "msg_2"}
        probe["webhook-signature"] = Webhook(whsec).sign("msg_2", now, test)
        refused = client.post(f"{url}/", content=test, headers=probe)
        assert refused.status_code == 422
        assert refused.json()["ok"] is False
        saved = client.post(f"{url}/", content=body, headers=signed)
        assert saved.json() == {"ok": True}
        store.pat = held
        again = client.post(f"{url}/", content=body, headers=signed)
        assert again.json() == {"ok": True}
        assert store.pat == held  # a repeated webhook-id changes nothing
        hygiene.record_text("example receiver answers", refused.text + saved.text)


# --- a receiver's bad answers, fuzzed: never an unexpected error, a push only after an ok test


def _bad_answers() -> list[tuple[int, int, dict[str, Any] | None]]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    values = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=40)
    bodies = st.none() | st.dictionaries(st.sampled_from(["ok", "reason", "x"]), values, max_size=3)
    statuses = st.sampled_from([200, 201, 202, 204, 301, 400, 401, 404, 409, 422, 429, 500, 503])
    examples: list[tuple[int, int, dict[str, Any] | None]] = []

    @settings(
        max_examples=24, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(st.sampled_from([0, 1, 2]), statuses, bodies)
    def collect(skip: int, status: int, body: dict[str, Any] | None) -> None:
        examples.append((skip, status, body))

    collect()
    return examples


async def test_bad_receiver_answers_never_crash_and_nothing_is_pushed_untested(
    world: World,
) -> None:
    emu = world.emu
    examples = _bad_answers()
    assert len(examples) >= 20
    refused = 0
    for skip, status, body in examples:  # skip: 0 preflight, 1 the test, 2 the push
        seeded, receiver = _seed(world)
        emu.faults.add("webhook", "POST", _hook(seeded), status=status, body=body, skip=skip)
        report = await world.rotate_one(seeded)
        emu.faults.clear()
        assert report.error is None or "unexpected" not in report.error.message, report.error
        said_ok = status == 200 and isinstance(body, dict) and body.get("ok") is True
        tested = {e.pat for e in receiver.events if e.type == "pat.test" and e.ok}
        pushed = {e.pat for e in receiver.events if e.type == "pat.rotated"}
        if not (skip == 1 and said_ok):  # else the fault itself said the new PAT works
            assert pushed <= tested, (skip, status, body)
        refused += report.error is not None
        assert violations(emu, seeded, settled=report.ok) == [], (skip, status, body)
    assert refused > 5  # the strategy reaches the refusals


def test_a_reason_that_quotes_the_pat_is_cut_out_and_kept_to_one_short_line() -> None:
    from rotation.secret import Secret
    from rotation.updaters.webhook import _reason

    pat = Secret("dapi" + secrets.token_hex(16))
    said = _reason({"reason": f"token {pat.reveal()}\nis bad " + "x" * 400}, pat)
    assert pat.reveal() not in said
    assert "<the PAT>" in said
    assert "\n" not in said
    assert len(said) <= 200


async def test_the_function_app_rotates_one_pat_into_prequel_github_and_a_webhook_at_once(
    world: World, app: Any, real_time: None
) -> None:
    from tests.functions import post
    from tests.invariants import held_pat

    emu = world.emu
    seeded = world.target(consumers=("prequel-source", "github-actions-secret", "webhook"))
    app(seeded)
    answer = await post(seeded.name)
    assert answer.status == 200, answer.body
    assert answer.body["outcome"] == "rotated", answer.body
    assert [c["confirmed"] for c in answer.body["consumers"]] == [True, True, True]
    (minted,) = rotator_tokens(emu, seeded)
    assert [held_pat(emu, c.kind, c.id) for c in seeded.consumers] == [minted.value] * 3
    hygiene.record_text("function app answer", json.dumps(answer.body))
