"""Bad input, fuzzed: configs, HTTP requests and events never crash, never rotate unasked.

Each property runs a few hundred examples in CI (hypothesis, derandomized for repeatability).
"""

from __future__ import annotations

import json
import re
import string
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotation.app import (
    BadRequestError,
    MalformedEventError,
    RotateOptions,
    parse_event,
    parse_rotate_request,
)
from rotation.config import parse_config
from rotation.errors import ConfigError
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
    # the azure-devops-variable-group, fivetran-destination, github-actions-secret and webhook
    # updater tables
    "organization_url",
    "project",
    "group_id",
    "variable",
    "auth",
    "other_secrets",
    "destination_id",
    "api_url",
    "api_secret_secret_name",
    "owner",
    "repo",
    "environment",
    "token_secret_name",
    "url",
    "signing_secret_name",
]
config_like = st.recursive(
    scalars
    | st.sampled_from(
        [
            *("https://x.vault.azure.net", "entra-client-secret", "prequel-source", "a-b"),
            *("azure-devops-variable-group", "fivetran-destination", "https://dev.azure.com/org"),
            *("kept-by-null", "client-secret"),
            *("github-actions-secret", "webhook", "https://u:p@h.example.com", "GITHUB_X"),
        ]
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
        hygiene.record_text("fuzz config error", text)
        if text.startswith("configuration: "):  # not a table at all: said of the top level
            assert "top level" in text
            return
        head, *lines = text.splitlines()
        assert re.fullmatch(r"configuration has (\d+) problem\(s\):", head), text
        assert len(lines) == int(head.split()[2])
        roots = ["(top level)", "key_vault_url", "targets", "defaults", "[", *map(str, data)]
        for line in lines:  # every problem starts with the path of the field it is about
            assert line.startswith("  - "), line
            _path, sep, message = line[4:].partition(": ")
            assert sep, line
            assert message.strip(), line
            assert any(line[4:].startswith(root) for root in roots), line


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
    world: World, monkeypatch, azurite
) -> None:  # type: ignore[no-untyped-def]
    seeded = world.target()
    configure(monkeypatch, world.emu, azurite.connection_string, seeded)  # no writer without it
    assert (await post(seeded.name)).status == 200  # bootstrapped: from now on nothing is due
    before = {t.token_id for t in rotator_tokens(world.emu, seeded)}
    bodies = (
        st.sampled_from([b"", b"{}", b'{"dry_run": true}', b'{"force": false}'])
        | st.binary(max_size=120)
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


NEAR = "Microsoft.KeyVault.SecretNearExpiry"
EXPIRED = "Microsoft.KeyVault.SecretExpired"
NEW_VERSION = "Microsoft.KeyVault.SecretNewVersionCreated"


@st.composite
def _named_events(draw: st.DrawFn) -> dict[str, Any]:
    """Choices for an event that may name the managed secret, spelt in every published way."""
    return {
        "kind": draw(st.sampled_from([NEAR, EXPIRED, NEW_VERSION])),
        "vault": draw(st.sampled_from(["ours", "ours-upper", "other", "no-id"])),
        "name": draw(st.sampled_from(["exact", "upper", "padded", "other"])),
        "name_key": draw(st.sampled_from(["ObjectName", "objectName ", " OBJECTNAME", None])),
        "version": draw(st.sampled_from(["current", "current-upper", "padded", "stale", "none"])),
        "due": draw(st.booleans()),
        "noise": draw(st.sampled_from([None, "2026-12-01T00:00:00Z", "soon", 1.5, [1]])),
    }


def _build_event(
    choice: dict[str, Any], vault_url: str, secret: str, current: str
) -> tuple[dict[str, Any], bool]:
    """Return (event data, whether it names our vault, our secret and no stale version)."""
    name = {
        "exact": secret,
        "upper": secret.upper(),
        "padded": f" {secret} ",
        "other": "someone-elses",
    }[choice["name"]]
    version = {
        "current": current,
        "current-upper": current.upper(),
        "padded": f" {current}",
        "stale": "0" * 32,
        "none": "",
    }[choice["version"]]
    host = vault_url.removeprefix("https://")
    host = host.upper() if choice["vault"] == "ours-upper" else host
    host = "other.vault.azure.net" if choice["vault"] == "other" else host
    data: dict[str, Any] = {"ObjectType": "Secret", "EXP": choice["noise"], "NBF": choice["noise"]}
    if choice["vault"] == "no-id":
        data["VaultName"] = host.split(".")[0]  # a loopback vault is never matched by name
    else:
        data["Id"] = f"https://{host}/secrets/{name.strip()}" + (f"/{version}" if version else "")
    if choice["name_key"] is not None:
        data[choice["name_key"]] = name
    if version:
        data["Version"] = version
    ours = (
        choice["vault"] in {"ours", "ours-upper"}
        and choice["name"] != "other"
        and choice["version"] != "stale"
    )
    return data, ours


async def test_fuzzed_events_naming_the_managed_secret_rotate_exactly_when_they_should(
    world: World, monkeypatch, azurite
) -> None:  # type: ignore[no-untyped-def]
    """An actionable event for our vault and secret rotates when it names the latest version
    (however spelt), or names no version and the target is due; nothing else ever rotates."""
    import azure.functions as func

    seeded = world.target()
    configure(monkeypatch, world.emu, azurite.connection_string, seeded)
    assert (await post(seeded.name)).status == 200
    examples: list[dict[str, Any]] = []

    @SLOW_FUZZ
    @given(_named_events())
    def collect(choice: dict[str, Any]) -> None:
        examples.append(choice)

    collect()
    assert len(examples) >= 100
    rotations = 0
    for i, choice in enumerate(examples):
        latest = world.emu.keyvault.latest(seeded.secret_name)
        assert latest is not None
        days = 1 if choice["due"] else 60  # the target rotates when < 30 days are left
        world.emu.keyvault.update(
            seeded.secret_name, None, {"exp": int(time.time()) + days * 86_400}
        )
        data, ours = _build_event(
            choice, world.emu.keyvault_url, seeded.secret_name, latest.version
        )
        named_version = choice["version"] != "none"
        forced = choice["kind"] == EXPIRED and named_version  # an expired latest PAT
        expected = choice["kind"] != NEW_VERSION and ours and (forced or choice["due"])
        before = len(rotator_tokens(world.emu, seeded))
        created = world.emu.requests.count("databricks", "POST", "/api/2.0/token/create")
        event = func.EventGridEvent(
            id=f"named-{i}",
            data=data,
            topic="t",
            subject=seeded.secret_name,
            event_type=choice["kind"],
            event_time=None,
            data_version="1",
        )  # type: ignore[arg-type]
        await deliver(event)
        minted = world.emu.requests.count("databricks", "POST", "/api/2.0/token/create") - created
        assert minted == (1 if expected else 0), (choice, data)
        assert len(rotator_tokens(world.emu, seeded)) == before  # the old PAT was revoked
        rotations += minted
    assert 10 < rotations < len(examples) - 10  # the strategy reaches both sides


async def test_fuzzed_events_never_raise_and_never_rotate(
    world: World, monkeypatch, caplog, azurite
) -> None:  # type: ignore[no-untyped-def]
    import azure.functions as func

    seeded = world.target()
    configure(monkeypatch, world.emu, azurite.connection_string, seeded)
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
        await deliver(event)  # must not raise; none names the managed secret, so none rotates
    assert {t.token_id for t in rotator_tokens(world.emu, seeded)} == before
    assert any(r.getMessage().startswith("event: ") for r in caplog.records)


def test_hostile_event_fields_are_malformed_not_crashes() -> None:
    import pytest

    for data in ({"Id": "https://[::1/secrets/x/y"}, "[" * 5000, {"ObjectName": ["x"]}):
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


def test_fields_the_handler_does_not_use_never_make_an_event_malformed() -> None:
    for exp in (10**400, "nan", "2026-12-01T00:00:00Z", {"x": 1}, True):
        event = parse_event(
            event_id="e",
            event_type="Microsoft.KeyVault.SecretNearExpiry",
            subject=None,
            data={"ObjectName": "x", "EXP": exp, "NBF": exp},
        )
        assert event.secret_name == "x"


NEW_UPDATERS: dict[str, dict[str, object]] = {
    "azure-devops-variable-group": {
        "organization_url": "https://dev.azure.com/org",
        "project": "data",
        "group_id": 3,
        "variable": "DATABRICKS_TOKEN",
        "auth": "client-secret",
        "tenant_id": "00000000-0000-0000-0000-000000000000",
        "client_id": "11111111-1111-1111-1111-111111111111",
        "client_secret_name": "devops-sp",
        "other_secrets": "refuse",
    },
    "fivetran-destination": {
        "api_url": "https://api.fivetran.com",
        "destination_id": "dest_1",
        "api_key_secret_name": "ft-key",
        "api_secret_secret_name": "ft-secret",
    },
    "github-actions-secret": {
        "owner": "octo-org",
        "repo": "app",
        "secret_name": "DATABRICKS_TOKEN",
        "token_secret_name": "gh-token",
    },
    "webhook": {"url": "https://hooks.example.com/pat", "signing_secret_name": "hook-secret"},
}
FIELD_VALUES = (
    scalars
    | st.text(alphabet=string.printable, max_size=60)
    | st.sampled_from(
        [
            *("https://x:p4ssw0rd@h.example.com", "http://h", "https://h/a?b", "GITHUB_T"),
            *("..", "a/b", "managed-identity", "kept-by-null", "https://h/o"),
        ]
    )
)


@FUZZ
@given(st.sampled_from(sorted(NEW_UPDATERS)), st.data())
def test_each_new_updater_table_is_accepted_or_refused_with_its_path(
    kind: str, data: st.DataObject
) -> None:
    updater: dict[str, object] = {"kind": kind, **NEW_UPDATERS[kind]}
    names = sorted({*updater, "api_url", "environment", "url", "x"} - {"kind"})
    field = data.draw(st.sampled_from(names))
    updater[field] = data.draw(FIELD_VALUES)
    principal = {"kind": "self", "application_id": "55555555-5555-5555-5555-555555555555"}
    target = {"name": "t", "workspace_url": "https://adb-1.azuredatabricks.net"}
    target |= {"secret_name": "t-pat", "principal": principal, "updaters": [updater]}
    try:
        parse_config({"key_vault_url": "https://kv.vault.azure.net", "targets": [target]})
    except ConfigError as exc:
        text = str(exc)
        hygiene.record_text("fuzz updater table error", text)
        if field in {"url", "api_url"}:  # a URL with a password is refused without repeating it
            assert "p4ssw0rd" not in text
        for line in text.splitlines()[1:]:
            assert line.startswith("  - targets"), text
