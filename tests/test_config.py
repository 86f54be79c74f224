"""Configuration: valid files load; every problem is reported with its path and what to do."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from rotation.config import load_config, parse_config
from rotation.errors import ConfigError

TOML = textwrap.dedent(
    """
    key_vault_url = "https://my-vault.vault.azure.net"
    [defaults]
    lifetime_days = 60
    rotate_before_days = 20
    [[targets]]
    name = "prequel-prod"
    workspace_url = "https://adb-1234567890123456.7.azuredatabricks.net/"
    secret_name = "prequel-prod-pat"
    grace_period_hours = 2
    [targets.principal]
    kind = "entra-client-secret"
    tenant_id = "00000000-0000-0000-0000-0000000000aa"
    client_id = "11111111-1111-1111-1111-1111111111bb"
    client_secret_name = "prequel-sp-secret"
    [[targets.updaters]]
    kind = "prequel-source"
    source_id = "src-1"
    api_key_secret_name = "prequel-api-key"
    """
)

APP = "22222222-2222-2222-2222-2222222222cc"


def _target(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "t1",
        "workspace_url": "https://adb-1.azuredatabricks.net",
        "secret_name": "t1-pat",
        "principal": {
            "kind": "databricks-oauth",
            "client_id": APP,
            "client_secret_name": "t1-oauth",
        },
    }
    return base | over


def _problems(data: object) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


def test_toml_file_loads_with_defaults_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotation.toml"
    path.write_text(TOML)
    config = load_config(path)
    (target,) = config.targets
    assert (target.lifetime_days, target.rotate_before_days) == (60, 20)
    assert target.grace_period_hours == 2
    assert target.workspace_url == "https://adb-1234567890123456.7.azuredatabricks.net"
    assert target.updaters[0].kind == "prequel-source"
    assert target.updaters[0].settings.id == "src-1"  # type: ignore[attr-defined]


def test_inline_json_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    data = {"key_vault_url": "https://v.vault.azure.net", "targets": [_target()]}
    monkeypatch.setenv("ROTATION_CONFIG", json.dumps(data))
    assert load_config().targets[0].name == "t1"


def test_path_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(TOML)
    monkeypatch.setenv("ROTATION_CONFIG", str(path))
    assert load_config().targets[0].name == "prequel-prod"


def test_missing_configuration_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROTATION_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="--config PATH or set ROTATION_CONFIG"):
        load_config()


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("key_vault_url = ")
    with pytest.raises(ConfigError, match=r"bad\.toml is not valid TOML"):
        load_config(path)


def test_every_problem_is_listed_with_its_path() -> None:
    bad = _target(
        secret_name="not valid!",
        workspace_url="http://insecure.example",
        principal={"kind": "entra-client-secret", "client_id": APP, "client_secret_name": "s"},
    )
    text = _problems({"key_vault_url": "https://v.vault.azure.net", "targets": [bad]})
    assert "targets[0].secret_name" in text
    assert "targets[0].workspace_url" in text
    assert "https://" in text
    assert "targets[0].principal.tenant_id: Field required" in text
    assert "3 problem(s)" in text


def test_lifetime_must_outlast_rotation_window_and_grace() -> None:
    text = _problems(
        {
            "key_vault_url": "https://v.vault.azure.net",
            "targets": [_target(lifetime_days=30, rotate_before_days=29, grace_period_hours=30)],
        }
    )
    assert "lifetime_days (30) must be longer than rotate_before_days (29)" in text


def test_duplicate_names_and_secret_names_are_rejected() -> None:
    text = _problems(
        {"key_vault_url": "https://v.vault.azure.net", "targets": [_target(), _target()]}
    )
    assert "duplicate target name 't1'" in text
    assert "duplicate secret_name 't1-pat'" in text


def test_unknown_kinds_name_the_known_ones() -> None:
    text = _problems(
        {
            "key_vault_url": "https://v.vault.azure.net",
            "targets": [
                _target(
                    principal={"kind": "password"},
                    updaters=[{"kind": "slack"}, {"kind": "prequel-source"}],
                )
            ],
        }
    )
    assert "targets[0].principal: kind must be one of 'entra-client-secret'" in text
    assert "targets[0].updaters[0].kind: unknown updater kind 'slack'" in text
    assert "prequel-destination" in text
    assert "targets[0].updaters[1].source_id: Field required" in text


def test_a_secret_value_in_the_config_is_refused_without_echoing_it() -> None:
    planted = "dapi" + "0123456789abcdef" * 2
    text = _problems(
        {
            "key_vault_url": "https://v.vault.azure.net",
            "targets": [
                _target(
                    principal={
                        "kind": "databricks-oauth",
                        "client_id": APP,
                        "client_secret_name": "n",
                        "client_secret": planted,
                    }
                )
            ],
        }
    )
    assert "principal.client_secret: Extra inputs are not permitted" in text
    assert "store them in Key Vault" in text
    assert planted not in text


def test_a_top_level_that_is_not_a_table_is_refused() -> None:
    assert "top level" in _problems(["not", "a", "table"])


def test_no_targets_is_refused() -> None:
    assert "targets" in _problems({"key_vault_url": "https://v.vault.azure.net", "targets": []})


def test_secret_names_differing_only_in_case_are_duplicates() -> None:
    text = _problems(
        {
            "key_vault_url": "https://v.vault.azure.net",
            "targets": [_target(), _target(name="t2", secret_name="T1-PAT")],
        }
    )
    assert "duplicate secret_name 'T1-PAT'" in text


def test_a_config_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00key = 1")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_inline_toml_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTATION_CONFIG", TOML)
    config = load_config()
    assert str(config.key_vault_url).startswith("https://my-vault.vault.azure.net")
    monkeypatch.setenv("ROTATION_CONFIG", 'key_vault_url = "https://my-vault.vault.azure.net"')
    with pytest.raises(ConfigError) as caught:
        load_config()
    text = str(caught.value)
    assert "ROTATION_CONFIG (inline TOML)" in text
    assert "targets: missing" in text
    assert "https:/m" not in text  # never taken for a file path


@pytest.mark.parametrize(
    ("targets", "needle"),
    [
        (None, "targets: missing — add at least one [[targets]] table"),
        (5, "targets: must be a list of tables ([[targets]] in TOML)"),
        ({"name": "x"}, "targets: must be a list of tables ([[targets]] in TOML)"),
    ],
)
def test_missing_or_misshapen_targets_say_what_to_add(targets: object, needle: str) -> None:
    data: dict[str, object] = {"key_vault_url": "https://my-vault.vault.azure.net"}
    if targets is not None:
        data["targets"] = targets
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    text = str(caught.value)
    assert needle in text
    assert "valid tuple" not in text
    assert text.count("targets:") == 1


def test_an_odd_key_is_quoted_in_its_path_and_never_splits_a_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"key_vault_url": "https://v.vault.azure.net", "targets": [], "a\x1eb": 1})
    lines = str(caught.value).splitlines()
    assert any(line.startswith("  - ['a\\x1eb']: ") for line in lines), lines


def test_a_relative_config_path_is_found_beside_the_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # the worker's current folder is not the app root
    monkeypatch.setenv("ROTATION_CONFIG", "rotation.sample.toml")
    monkeypatch.setenv("ROTATION_KEY_VAULT_URL", "https://my-vault.vault.azure.net")
    config = load_config()
    assert config.key_vault_url == "https://my-vault.vault.azure.net"
    assert config.targets


def _one_target(**over: object) -> dict[str, object]:
    return {"key_vault_url": "https://v.vault.azure.net", "targets": [_target(**over)]}


PREQUEL = {"kind": "prequel-source", "source_id": "s1", "api_key_secret_name": "k"}


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (
            _one_target() | {"key_vault_url": "https://v.vault.azure.net@evil.example"},
            "key_vault_url",
        ),
        (
            _one_target(workspace_url="https://adb-1.azuredatabricks.net@evil.example"),
            "workspace_url",
        ),
        (
            _one_target(updaters=[PREQUEL | {"base_url": "https://api.prequel.co@evil.example"}]),
            "updaters[0].base_url",
        ),
        (
            _one_target(
                updaters=[PREQUEL | {"base_url": "https://user:hunter2-password@api.prequel.co"}]
            ),
            "updaters[0].base_url",
        ),
        (
            _one_target(
                principal={
                    "kind": "entra-client-secret",
                    "tenant_id": "00000000-0000-0000-0000-0000000000aa",
                    "client_id": APP,
                    "client_secret_name": "s",
                    "authority_host": "https://login.microsoftonline.com@evil.example",
                }
            ),
            "principal.authority_host",
        ),
    ],
)
def test_a_url_with_userinfo_is_refused_in_every_url_field(
    data: dict[str, object], path: str
) -> None:
    text = _problems(data)
    assert path in text
    assert "userinfo" in text
    assert "hunter2-password" not in text  # a password in the URL is never echoed


def test_a_workspace_url_with_a_path_is_refused_and_a_trailing_slash_is_not_a_path() -> None:
    text = _problems(_one_target(workspace_url="https://adb-1.azuredatabricks.net/api/2.0"))
    assert "targets[0].workspace_url" in text
    assert "has a path ('/api/2.0')" in text
    config = parse_config(_one_target(workspace_url="https://adb-1.azuredatabricks.net/"))
    assert config.targets[0].workspace_url == "https://adb-1.azuredatabricks.net"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("update_path", "sources/{id}"),
        ("update_path", "@evil.example/sources/{id}"),
        ("update_path", "//evil.example/sources/{id}"),
        ("update_path", "/sources/{source}"),
        ("test_path", "sources/{id}/test-connection"),
        ("test_path", ".evil.example/x"),
    ],
)
def test_update_and_test_paths_must_be_routes_starting_with_a_slash(field: str, value: str) -> None:
    text = _problems(_one_target(updaters=[PREQUEL | {field: value}]))
    assert f"targets[0].updaters[0].{field}" in text


def test_an_empty_test_path_means_no_test_and_routes_with_id_load() -> None:
    updater = PREQUEL | {"update_path": "/v2/sources/{id}", "test_path": ""}
    config = parse_config(_one_target(updaters=[updater]))
    settings = config.targets[0].updaters[0].settings
    assert settings.test_path == ""  # type: ignore[attr-defined]
    assert settings.update_path == "/v2/sources/{id}"  # type: ignore[attr-defined]


def test_rotate_before_days_zero_is_refused_naming_the_setting() -> None:
    text = _problems(_one_target(rotate_before_days=0))
    assert "targets[0].rotate_before_days" in text
    assert "set rotate_before_days to at least 1" in text
    text = _problems(_one_target() | {"defaults": {"rotate_before_days": 0}})
    assert "defaults.rotate_before_days" in text


def test_rotate_before_days_must_leave_two_timer_periods(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_one_target(rotate_before_days=1)))
    monkeypatch.delenv("ROTATION_SCHEDULE", raising=False)
    assert load_config(path).targets[0].rotate_before_days == 1  # every 6 h: 1 day is enough
    monkeypatch.setenv("ROTATION_SCHEDULE", "0 0 0 * * *")  # daily: a run and a retry need 2 days
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert "targets[0]: rotate_before_days (1) must leave two timer periods" in text
    assert "ROTATION_SCHEDULE '0 0 0 * * *'" in text
    assert "set rotate_before_days to at least 2" in text
    monkeypatch.setenv("ROTATION_SCHEDULE", "0 30 9 * * 1")  # weekly
    data = _one_target(rotate_before_days=14)
    assert parse_config(data, schedule="0 30 9 * * 1").targets[0].rotate_before_days == 14
    with pytest.raises(ConfigError, match="at least 14"):
        parse_config(_one_target(rotate_before_days=13), schedule="0 30 9 * * 1")


@pytest.mark.parametrize(
    ("principal", "field"),
    [
        (
            {
                "kind": "entra-client-secret",
                "tenant_id": "contoso",
                "client_id": APP,
                "client_secret_name": "s",
            },
            "tenant_id",
        ),
        (
            {
                "kind": "entra-client-secret",
                "tenant_id": APP,
                "client_id": "my-app",
                "client_secret_name": "s",
            },
            "client_id",
        ),
        (
            {"kind": "databricks-oauth", "client_id": "sp-name", "client_secret_name": "s"},
            "client_id",
        ),
        (
            {"kind": "databricks-obo", "application_id": "12345", "admin_token_secret_name": "a"},
            "application_id",
        ),
        ({"kind": "self", "application_id": APP + "0"}, "application_id"),
        ({"kind": "managed-identity", "client_id": "my-identity"}, "client_id"),
        (
            {"kind": "managed-identity", "client_id": "system", "application_id": "app"},
            "application_id",
        ),
    ],
)
def test_every_azure_id_must_be_a_guid(principal: dict[str, str], field: str) -> None:
    text = _problems(_one_target(principal=principal))
    assert f"targets[0].principal.{field}: " in text
    assert "is not a GUID" in text


def test_a_system_assigned_identity_and_guids_in_any_case_load() -> None:
    system = {"kind": "managed-identity", "client_id": "system", "application_id": APP.upper()}
    config = parse_config(_one_target(principal=system))
    assert config.targets[0].principal.application_id == APP.upper()
