"""Bad input, fuzzed: configs, HTTP requests and events never crash, never rotate unasked.

Each property runs a few hundred examples in CI (hypothesis, derandomized for repeatability).
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotation.config import parse_config
from rotation.errors import ConfigError
from rotation.events import MalformedEventError, parse_event
from rotation.http_api import BadRequestError, RotateOptions, parse_rotate_request
from tests import hygiene
from tests.functions import Http, configure, deliver, post
from tests.invariants import rotator_tokens
from tests.world import World

FUZZ = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
SLOW_FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
KEYS = [
    "key_vault_url",
    "targets",
    "defaults",
    "concurrency",
    "name",
    "workspace_url",
    "secret_name",
    "principal",
    "kind",
    "tenant_id",
    "client_id",
    "client_secret_name",
    "updaters",
    "source_id",
    "api_key_secret_name",
    "lifetime_days",
    "rotate_before_days",
    "grace_period_hours",
]
config_like = st.recursive(
    scalars
    | st.sampled_from(
        ["https://x.vault.azure.net", "entra-client-secret", "prequel-source", "a-b"]
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=25,
)


@FUZZ
@given(config_like)
def test_any_configuration_is_accepted_or_refused_with_a_path(data: Any) -> None:
    try:
        parse_config(data)
    except ConfigError as exc:
        text = str(exc)
        assert "problem" in text or "top level" in text
        hygiene.record_text("fuzz config error", text)


@FUZZ
@given(
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4),
    st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
)
def test_any_rotate_request_parses_or_says_what_is_wrong(
    params: dict[str, str], body: bytes
) -> None:
    try:
        options = parse_rotate_request(params, body)
    except BadRequestError as exc:
        assert str(exc)
        return
    assert isinstance(options, RotateOptions)
    assert set(params) <= {"force", "dry_run", "code"}


event_fields = st.fixed_dictionaries(
    {},
    optional={
        k: scalars | st.text(alphabet=string.printable, max_size=80)
        for k in [
            "Id",
            "id",
            "VaultName",
            "ObjectType",
            "objectType",
            "ObjectName",
            "Version",
            "NBF",
            "EXP",
            "exp",
        ]
    },
)


@FUZZ
@given(
    st.one_of(
        st.none(),
        st.text(max_size=40),
        st.sampled_from(
            ["Microsoft.KeyVault.SecretNearExpiry", "Microsoft.KeyVault.SecretExpired"]
        ),
    ),
    st.one_of(st.none(), st.text(max_size=20)),
    event_fields | json_values | st.text(max_size=50),
)
def test_any_event_parses_or_is_called_malformed(
    event_type: object, subject: object, data: object
) -> None:
    try:
        event = parse_event(event_id="e", event_type=event_type, subject=subject, data=data)
    except MalformedEventError as exc:
        assert str(exc)
        return
    assert event.secret_name
    assert isinstance(event.event_type, str)


# --- through the Function App, against the emulators -----------------------------------------


async def test_fuzzed_http_bodies_never_500_and_never_rotate_unasked(
    world: World, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    seeded = world.target()
    configure(monkeypatch, world.emu, None, seeded)
    assert (await post(seeded.name)).status == 200  # bootstrapped: from now on nothing is due
    before = {t.token_id for t in rotator_tokens(world.emu, seeded)}
    bodies = (
        st.binary(max_size=120)
        | json_values.map(lambda v: json.dumps(v).encode())
        | st.fixed_dictionaries(
            {}, optional={"force": scalars, "dry_run": scalars, "forse": scalars}
        ).map(lambda d: json.dumps(d).encode())
    )
    params = st.dictionaries(
        st.sampled_from(["force", "dry_run", "x", "code"]), st.text(max_size=6), max_size=3
    )

    examples: list[tuple[bytes, dict[str, str]]] = []

    @SLOW_FUZZ
    @given(bodies, params)
    def collect(body: bytes, query: dict[str, str]) -> None:
        examples.append((body, query))

    collect()
    assert len(examples) >= 100
    statuses: list[int] = []
    for body, query in examples:
        answer: Http = await post(seeded.name, body, query)
        hygiene.record_text("fuzz http", json.dumps(answer.body))
        assert answer.status in {200, 400}, (body, query, answer)
        statuses.append(answer.status)
        if answer.status == 400:
            assert answer.body["error"]
            continue
        asked = parse_rotate_request(query, body)
        assert asked.force or answer.body["outcome"] in {"not-due", "would-rotate"}
        if not asked.force or asked.dry_run:
            assert {t.token_id for t in rotator_tokens(world.emu, seeded)} == before
        before = {t.token_id for t in rotator_tokens(world.emu, seeded)}
    assert statuses.count(400) > 10
    assert statuses.count(200) > 10  # the strategies reach both sides


async def test_fuzzed_events_never_raise_and_never_rotate(
    world: World, monkeypatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    import azure.functions as func

    seeded = world.target()
    configure(monkeypatch, world.emu, None, seeded)
    assert (await post(seeded.name)).status == 200
    before = {t.token_id for t in rotator_tokens(world.emu, seeded)}
    examples: list[tuple[object, object]] = []

    @SLOW_FUZZ
    @given(
        st.sampled_from(
            [
                "Microsoft.KeyVault.SecretNearExpiry",
                "Microsoft.KeyVault.SecretExpired",
                "Microsoft.KeyVault.SecretNewVersionCreated",
                "x",
            ]
        ),
        event_fields | json_values,
    )
    def collect(kind: object, data: object) -> None:
        examples.append((kind, data))

    collect()
    assert len(examples) >= 100
    for kind, data in examples:
        event = func.EventGridEvent(
            id="f",
            data=data,
            topic="t",
            subject="s",
            event_type=kind,
            event_time=None,
            data_version="1",
        )  # type: ignore[arg-type]
        await deliver(event)  # must not raise: no such event is about our latest version
    assert {t.token_id for t in rotator_tokens(world.emu, seeded)} == before
    assert any(r.getMessage().startswith("event: ") for r in caplog.records)


def test_hostile_event_fields_are_malformed_not_crashes() -> None:
    import pytest

    for data in (
        {"Id": "https://[::1/secrets/x/y"},
        {"ObjectName": "x", "EXP": 10**400},
        {"ObjectName": "x", "EXP": "nan"},
        "[" * 5000,
    ):
        with pytest.raises(MalformedEventError):
            parse_event(
                event_id="e",
                event_type="Microsoft.KeyVault.SecretNearExpiry",
                subject=None,
                data=data,
            )


def test_deeply_nested_bodies_are_400_material() -> None:
    import pytest

    with pytest.raises(BadRequestError):
        parse_rotate_request({}, b"[" * 5000)
