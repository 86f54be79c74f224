"""The Bicep templates parse (pycep) and wire what the app reads; no Bicep compiler exists here.

The alert rules in infra/app/alerts.bicep are checked against rotation.app.telemetry: their queries
may name only the fields the code emits (Field) and must filter on its event names, so the
Python module stays the one source of truth and the Bicep follows it. The committed
rotation.sample.toml is loaded with the real configuration parser, alternatives included.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from rotation.app import RUN_EVENT, TIMER_EVENT, Field, emit_timer
from rotation.config import Config, parse_config
from rotation.engine import Outcome
from rotation.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
SAMPLE = ROOT / "rotation.sample.toml"
VAULT_URL = "https://kv-sample.vault.azure.net"

FIELDS = {f.value for f in Field}


class _Attributes(logging.Handler):
    """Keep the attributes the code puts on a record beyond a plain LogRecord's."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.names |= set(vars(record)) - set(vars(logging.makeLogRecord({})))


def _timer_fields() -> set[str]:
    """Return the attributes of a TIMER_EVENT record, as rotation.app.telemetry.emit_timer writes them."""
    logger = logging.getLogger("rotation.telemetry")
    handler, level = _Attributes(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        emit_timer(3, 1)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return handler.names


TIMER_FIELDS = _timer_fields()
OUTCOMES = {o.value for o in Outcome}

# Rule name → (event its query filters on, outcomes it matches, parameters its query is built with)
ALERTS: dict[str, tuple[str, set[str], list[str]]] = {
    "rotation-failed": (RUN_EVENT, {Outcome.FAILED.value}, []),
    "pat-expiring": (RUN_EVENT, set(), ["patDaysLeftThreshold"]),
    "pat-healed": (RUN_EVENT, {Outcome.HEALED.value, Outcome.MISMATCH.value}, []),
    "credential-expiring": (RUN_EVENT, set(), ["credentialDaysLeftThreshold"]),
    "timer-silent": (TIMER_EVENT, set(), ["heartbeatWindowHours", "deployedAt"]),
}
# What Azure accepts (minutes) for a log search alert's windowSize and evaluationFrequency.
WINDOWS = {5, 10, 15, 30, 45, 60, 120, 180, 240, 300, 360, 1440, 2880}
FREQUENCIES = {1, 5, 10, 15, 30, 45, 60, 120, 180, 240, 300, 360, 1440}


def _parse(path: Path) -> dict[str, Any]:
    return BicepParser().parse(file_path=path)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return _parse(INFRA / "main.bicep")


@pytest.fixture(scope="module")
def alerts() -> dict[str, Any]:
    return _parse(INFRA / "app" / "alerts.bicep")


def _body(resource: dict[str, Any]) -> dict[str, Any]:
    """Return a resource's own properties (pycep nests them once more under a condition/loop)."""
    config = resource["config"]
    return config["config"] if "condition" in config or "loop_type" in config else config


def _decorator(item: dict[str, Any], kind: str) -> Any:
    return next((d.get("argument") for d in item.get("decorators", []) if d["type"] == kind), None)


def _accessor(*names: str) -> Any:
    """Return pycep's form of a property access chain such as storage.properties.primaryEndpoints."""
    if len(names) == 1:
        return names[0]
    return {
        "operator": {
            "type": "property_accessor",
            "operands": {"operand_1": names[0], "operand_2": _accessor(*names[1:])},
        }
    }


def _role(body: dict[str, Any]) -> str:
    """Return the roles.<name> a role assignment grants."""
    role = body["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
    return role["operator"]["operands"]["operand_2"]


def _minutes(duration: str) -> int:
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", duration)
    assert match, duration
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return days * 1440 + hours * 60 + minutes


# --- the parse gate ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.bicep")), ids=lambda p: p.name)
def test_every_template_parses_and_describes_its_parameters_and_outputs(path: Path) -> None:
    parsed = _parse(path)
    for kind in ("parameters", "outputs"):
        for name, item in parsed.get(kind, {}).items():
            assert _decorator(item, "description"), (
                f"{path.name}: {kind} {name} has no @description"
            )


def test_every_checkov_skip_says_why() -> None:
    for path in INFRA.rglob("*.bicep"):
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                assert re.search(r"//\s*checkov:skip=CKV_[A-Z0-9_]+:\s*\S.{20,}", line), (
                    f"{path.name}: a checkov skip without a reason: {line.strip()}"
                )


# --- main.bicep -------------------------------------------------------------------------------


def test_role_assignments_are_named_with_guid(template: dict[str, Any]) -> None:
    assignments = {
        name: _body(r)
        for name, r in template["resources"].items()
        if r["type"] == "Microsoft.Authorization/roleAssignments"
    }
    assert set(assignments) == {
        "vaultSecretsOfficer",
        "deployerSecretsOfficer",
        "blobOwner",
        "queueContributor",
        "metricsPublisher",
        "deadLetterWriter",
        "deployerDeadLetterReader",
    }
    for name, body in assignments.items():
        assert body["name"]["function"]["type"] == "guid", name


def test_the_app_gets_every_setting_the_rotator_reads() -> None:
    text = (INFRA / "main.bicep").read_text()
    names = set(re.findall(r"\{ name: '([A-Za-z_]+)'", text))
    assert {
        "ROTATION_CONFIG",
        "ROTATION_KEY_VAULT_URL",
        "ROTATION_SCHEDULE",
        "ROTATION_QUEUE",
        "ROTATION_FANOUT_THRESHOLD",
        "AzureWebJobsStorage__accountName",
        "AZURE_CLIENT_ID",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",  # the exporter signs in with it (no local auth)
    } <= names
    assert "{ name: 'ROTATION_KEY_VAULT_URL', value: keyVaultUrl }" in text


def test_the_vault_url_is_the_vaults_own_and_is_an_output(template: dict[str, Any]) -> None:
    url = template["variables"]["keyVaultUrl"]["value"]
    assert url == "https://${keyVaultName}${environment().suffixes.keyvaultDns}"
    outputs = template["outputs"]
    assert outputs["KEY_VAULT_URL"]["value"] == "keyVaultUrl"
    assert {
        "KEY_VAULT_URL",
        "KEY_VAULT_NAME",
        "FUNCTION_APP_NAME",
        "IDENTITY_CLIENT_ID",
        "IDENTITY_PRINCIPAL_ID",
    } <= set(outputs)


def test_the_deployer_may_store_credentials(template: dict[str, Any]) -> None:
    resource = template["resources"]["deployerSecretsOfficer"]
    condition = resource["config"]["condition"]["operator"]
    assert condition["type"] == "not"
    assert condition["operands"]["bool_value"]["function"]["parameters"]["item_to_test"] == (
        "principalId"
    )
    body = _body(resource)
    assert body["scope"] == "vault"
    assert body["properties"]["principalId"] == "principalId"
    assert body["properties"]["principalType"] == "principalType"
    role = body["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
    assert role["operator"]["operands"]["operand_2"] == "keyVaultSecretsOfficer"
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"
    assert parameters["principalType"]["value"] == "${AZURE_PRINCIPAL_TYPE}"


def test_purge_protection_is_a_parameter_off_by_default(template: dict[str, Any]) -> None:
    parameter = template["parameters"]["enablePurgeProtection"]
    assert parameter["default"] is False
    description = _decorator(parameter, "description")
    assert "azd down --purge" in description
    assert "true" in description
    value = _body(template["resources"]["newVault"])["properties"]["enablePurgeProtection"]
    # Key Vault accepts only true: false must be left unset (null), never sent.
    assert value["operator"]["type"] == "conditional"
    assert value["operator"]["operands"] == {
        "condition": "enablePurgeProtection",
        "true_value": True,
        "false_value": None,
    }


def test_an_existing_vault_s_requirements_are_stated(template: dict[str, Any]) -> None:
    description = _decorator(template["parameters"]["existingKeyVaultName"], "description")
    for requirement in ("resource group", "enableRbacAuthorization true", "region", "system topic"):
        assert requirement in description


@pytest.fixture(scope="module")
def events() -> dict[str, Any]:
    return _parse(INFRA / "event-subscription.bicep")


def test_key_vault_events_reach_the_function_by_its_name(events: dict[str, Any]) -> None:
    subscription = events["resources"]["nearExpiry"]
    assert subscription["type"] == "Microsoft.EventGrid/systemTopics/eventSubscriptions"
    body = _body(subscription)
    assert body["parent"] == "topic"
    destination = body["properties"]["destination"]
    assert destination["endpointType"] == "AzureFunction"
    assert destination["properties"]["resourceId"] == "${app.id}/functions/key_vault_events"
    assert destination["properties"]["maxEventsPerBatch"] == 1
    assert body["properties"]["filter"]["includedEventTypes"] == [
        "Microsoft.KeyVault.SecretNearExpiry",
        "Microsoft.KeyVault.SecretExpired",
    ]
    existing = {name: r for name, r in events["resources"].items() if r["existing"]}
    assert _body(existing["topic"])["name"] == "systemTopicName"
    assert _body(existing["app"])["name"] == "functionAppName"


def test_main_leaves_the_subscription_to_the_postdeploy_deployment(
    template: dict[str, Any],
) -> None:
    """One `azd up`: no parameter to flip and no second provision; the hook deploys it after the code."""
    types = {r["type"] for r in template["resources"].values()}
    assert "Microsoft.EventGrid/systemTopics/eventSubscriptions" not in types
    assert "deployEventSubscription" not in template["parameters"]
    topic = _body(template["resources"]["vaultEvents"])
    assert template["outputs"]["EVENT_GRID_TOPIC_NAME"]["value"] == _accessor("vaultEvents", "name")
    assert template["outputs"]["FUNCTION_APP_NAME"]["value"] == _accessor("app", "name")
    assert topic["properties"]["topicType"] == "Microsoft.KeyVault.vaults"


def test_undeliverable_events_are_dead_lettered_through_the_topic_s_identity(
    template: dict[str, Any], events: dict[str, Any]
) -> None:
    dead_letter = _body(events["resources"]["nearExpiry"])["properties"]
    assert "deadLetterDestination" not in dead_letter  # the key-based form: no identity
    with_identity = dead_letter["deadLetterWithResourceIdentity"]
    assert with_identity["identity"] == {"type": "SystemAssigned"}
    destination = with_identity["deadLetterDestination"]
    assert destination["endpointType"] == "StorageBlob"
    assert destination["properties"] == {
        "resourceId": _accessor("storage", "id"),
        "blobContainerName": "deadLetterContainerName",
    }
    assert dead_letter["retryPolicy"] == {
        "maxDeliveryAttempts": 30,
        "eventTimeToLiveInMinutes": 1440,
    }
    # main.bicep: the topic has that identity, and it may write to the container (and only there).
    assert _body(template["resources"]["vaultEvents"])["identity"] == {"type": "SystemAssigned"}
    container = _body(template["resources"]["deadLetterContainer"])
    assert container["parent"] == "blobService"
    assert container["name"] == "deadLetterContainerName"
    assert template["variables"]["deadLetterContainerName"]["value"] == "eventgrid-deadletter"
    writer = _body(template["resources"]["deadLetterWriter"])
    assert writer["scope"] == "deadLetterContainer"
    assert writer["properties"]["principalId"] == _accessor(
        "vaultEvents", "identity", "principalId"
    )
    assert _role(writer) == "storageBlobDataContributor"
    assert template["variables"]["roles"]["value"]["storageBlobDataContributor"] == (
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
    )
    # The deployer can read what landed there (README: where to look).
    reader = template["resources"]["deployerDeadLetterReader"]
    assert reader["config"]["condition"]["operator"]["type"] == "not"
    assert _body(reader)["scope"] == "deadLetterContainer"
    assert _body(reader)["properties"]["principalId"] == "principalId"
    assert _role(_body(reader)) == "storageBlobDataReader"
    assert template["variables"]["roles"]["value"]["storageBlobDataReader"] == (
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
    )
    outputs = template["outputs"]
    assert outputs["DEAD_LETTER_CONTAINER"]["value"] == _accessor("deadLetterContainer", "name")
    assert outputs["STORAGE_ACCOUNT_NAME"]["value"] == _accessor("storage", "name")


def _api_versions(parsed: dict[str, Any]) -> dict[str, str]:
    return {
        f"{name} ({resource['type']})": resource["api_version"]
        for name, resource in parsed.get("resources", {}).items()
    }


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.bicep")), ids=lambda p: p.name)
def test_every_resource_uses_a_ga_api_version(path: Path) -> None:
    versions = _api_versions(_parse(path))
    assert versions, f"{path.name} declares no resource"
    for resource, version in versions.items():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", version), f"{path.name}: {resource}@{version}"
    # The same in the text, so a resource pycep did not list cannot hide a preview version.
    assert not re.findall(r"@\d{4}-\d{2}-\d{2}-[a-z]+'", path.read_text()), path.name


def test_the_event_grid_resources_are_on_ga_versions(
    template: dict[str, Any], events: dict[str, Any]
) -> None:
    assert template["resources"]["vaultEvents"]["api_version"] == "2022-06-15"
    assert events["resources"]["nearExpiry"]["api_version"] == "2022-06-15"
    assert events["resources"]["topic"]["api_version"] == "2022-06-15"


def test_storage_service_uris_come_from_the_account_s_own_endpoints(
    template: dict[str, Any],
) -> None:
    """Built from primaryEndpoints, so a sovereign cloud's suffix is the right one."""
    settings = {
        s["name"]: s["value"]
        for s in _body(template["resources"]["app"])["properties"]["siteConfig"]["appSettings"]
    }
    assert settings["AzureWebJobsStorage__blobServiceUri"] == _accessor(
        "storage", "properties", "primaryEndpoints", "blob"
    )
    assert settings["AzureWebJobsStorage__queueServiceUri"] == _accessor(
        "storage", "properties", "primaryEndpoints", "queue"
    )
    assert settings["AzureWebJobsStorage__accountName"] == _accessor("storage", "name")
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"


def test_the_app_s_storage_roles_cover_blob_leases_and_the_queue(template: dict[str, Any]) -> None:
    """Lock leases need Blob Data Contributor or more, the fan-out queue Queue Data Contributor."""
    on_storage = {
        _role(_body(r)): _body(r)
        for r in template["resources"].values()
        if r["type"] == "Microsoft.Authorization/roleAssignments" and _body(r)["scope"] == "storage"
    }
    assert set(on_storage) == {"storageBlobDataOwner", "storageQueueDataContributor"}
    for body in on_storage.values():
        assert body["properties"]["principalId"] == _accessor(
            "identity", "properties", "principalId"
        )


def test_parameters_file_names_only_declared_parameters(template: dict[str, Any]) -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(parameters) <= set(template["parameters"])
    required = {n for n, p in template["parameters"].items() if p.get("default") is None}
    assert required == {"environmentName", "alertEmail"}
    assert required <= set(parameters)
    assert parameters["alertEmail"]["value"] == "${ALERT_EMAIL}"
    # azd substitutes into the JSON text: a value with quotes (inline JSON) would break it, so the
    # configuration reaches the app as a file name.
    assert parameters["rotationConfig"]["value"] == "${ROTATION_CONFIG=rotation.toml}"


def test_the_heartbeat_window_follows_the_schedule(template: dict[str, Any]) -> None:
    parameters = template["parameters"]
    assert parameters["rotationPeriodHours"]["default"] == 6
    assert parameters["rotationSchedule"]["default"] == "0 0 */${rotationPeriodHours} * * *"
    window = parameters["heartbeatWindowHours"]["default"]["operator"]
    assert window == {
        "type": "multiply",
        "operands": {"operand_1": 2, "operand_2": "rotationPeriodHours"},
    }
    assert _decorator(parameters["heartbeatWindowHours"], "max_value") == 48
    assert _decorator(parameters["rotationPeriodHours"], "max_value") * 2 <= 48


def test_main_passes_every_alert_parameter_to_the_module(
    template: dict[str, Any], alerts: dict[str, Any]
) -> None:
    module = template["modules"]["alerts"]
    assert module["detail"]["path"] == "app/alerts.bicep"
    params = module["config"]["params"]
    for name in (
        "alertEmail",
        "alertWebhookUrl",
        "patDaysLeftThreshold",
        "credentialDaysLeftThreshold",
        "heartbeatWindowHours",
    ):
        assert params[name] == name, name
        assert name in template["parameters"], name
        assert name in alerts["parameters"], name
    assert params["workspaceId"]["operator"]["operands"] == {"operand_1": "logs", "operand_2": "id"}
    required = {n for n, p in alerts["parameters"].items() if p.get("default") is None}
    assert required <= set(params)
    assert template["parameters"]["patDaysLeftThreshold"]["default"] == 14
    assert template["parameters"]["credentialDaysLeftThreshold"]["default"] == 30
    assert template["parameters"]["alertEmail"].get("default") is None
    assert template["parameters"]["alertWebhookUrl"]["default"] == ""
    assert any(
        d["type"] == "secure" for d in template["parameters"]["alertWebhookUrl"]["decorators"]
    )


# --- alerts.bicep: the queries follow rotation.app.telemetry -----------------------------------------


def _rules(alerts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["name"]: rule for rule in alerts["variables"]["rules"]["value"]}


def _query(alerts: dict[str, Any], rule: dict[str, Any]) -> tuple[str, list[str]]:
    """Return a rule's KQL (format placeholders left in) and the parameters filled into it."""
    value = alerts["variables"][rule["query"]]["value"]
    if isinstance(value, str):
        return value, []
    function = value["function"]
    assert function["type"] == "format", rule["name"]
    parameters = function["parameters"]
    args = sorted((k for k in parameters if k.startswith("arg_")), key=lambda k: int(k[4:]))
    return parameters["format_string"], [parameters[k] for k in args]


def _properties_named(kql: str) -> set[str]:
    dotted = re.findall(r"\bProperties\s*\.\s*([A-Za-z_]\w*)", kql)
    indexed = re.findall(r"\bProperties\s*\[\s*['\"]([^'\"]*)['\"]\s*\]", kql)
    return set(dotted) | set(indexed)


def test_the_five_alerts_exist(alerts: dict[str, Any]) -> None:
    assert set(_rules(alerts)) == set(ALERTS)
    loop = alerts["resources"]["alertRules"]
    assert loop["type"] == "Microsoft.Insights/scheduledQueryRules"
    assert loop["config"]["loop_type"]["detail"] == {"item_name": "rule", "array_name": "rules"}


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_each_query_names_only_fields_the_code_emits(alerts: dict[str, Any], name: str) -> None:
    kql, _ = _query(alerts, _rules(alerts)[name])
    assert kql.lstrip().startswith("AppTraces\n"), "one table throughout: AppTraces/Properties"
    assert "customDimensions" not in kql
    named = _properties_named(kql)
    assert named <= FIELDS, f"{name} reads fields the code never writes: {named - FIELDS}"
    event = ALERTS[name][0]
    if event == RUN_EVENT:
        assert Field.TARGET.value in named, f"{name} must say which target"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_each_query_filters_on_its_event_by_the_exact_string(
    alerts: dict[str, Any], name: str
) -> None:
    kql, _ = _query(alerts, _rules(alerts)[name])
    event = ALERTS[name][0]
    other = TIMER_EVENT if event == RUN_EVENT else RUN_EVENT
    assert f'| where Message == "{event}"' in kql
    assert other not in kql
    assert set(re.findall(r'Message\s*==\s*"([^"]*)"', kql)) == {event}


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_each_query_matches_outcomes_the_code_has(alerts: dict[str, Any], name: str) -> None:
    kql, _ = _query(alerts, _rules(alerts)[name])
    matched = set(re.findall(r'Properties\.outcome\)\s*==\s*"([^"]*)"', kql))
    assert matched <= OUTCOMES
    assert matched == ALERTS[name][1]


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_each_query_takes_its_parameters(alerts: dict[str, Any], name: str) -> None:
    kql, args = _query(alerts, _rules(alerts)[name])
    assert args == ALERTS[name][2]
    for i, arg in enumerate(args):
        assert f"{{{i}}}" in kql, f"{name} never uses {arg}"
        assert _decorator(alerts["parameters"][arg], "description")


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_each_rule_is_one_azure_accepts(alerts: dict[str, Any], name: str) -> None:
    rule = _rules(alerts)[name]
    kql, _ = _query(alerts, rule)
    assert rule["severity"] in range(5)
    window, frequency = _minutes(rule["windowSize"]), _minutes(rule["evaluationFrequency"])
    assert window in WINDOWS
    assert frequency in FREQUENCIES
    assert frequency <= window
    for column in rule["dimensions"]:
        assert f"by {column} = " in kql, f"{name} splits by {column}, which its query lacks"
    assert rule["displayName"].startswith("pat-rotator: ")
    assert len(rule["description"]) < 2048


def test_the_heartbeat_window_fits_its_rule(alerts: dict[str, Any]) -> None:
    hours = _decorator(alerts["parameters"]["heartbeatWindowHours"], "max_value")
    assert hours * 60 <= _minutes(_rules(alerts)["timer-silent"]["windowSize"])
    kql, _ = _query(alerts, _rules(alerts)["timer-silent"])
    assert "ago({0}h)" in kql


def test_every_rule_notifies_the_action_group(alerts: dict[str, Any]) -> None:
    properties = _body(alerts["resources"]["alertRules"])["properties"]
    assert properties["scopes"] == ["workspaceId"]
    assert properties["autoMitigate"] is True
    actions = properties["actions"]["actionGroups"]
    assert actions == [
        {
            "operator": {
                "type": "property_accessor",
                "operands": {"operand_1": "actionGroup", "operand_2": "id"},
            }
        }
    ]
    group = alerts["resources"]["actionGroup"]["config"]["properties"]
    assert group["emailReceivers"][0]["emailAddress"] == "alertEmail"
    webhooks = group["webhookReceivers"]["operator"]
    assert webhooks["operands"]["condition"]["function"]["parameters"]["item_to_test"] == (
        "alertWebhookUrl"
    )
    assert webhooks["operands"]["false_value"][0]["serviceUri"] == "alertWebhookUrl"


# --- rotation.sample.toml -------------------------------------------------------------------------


def _sample() -> dict[str, Any]:
    return tomllib.loads(SAMPLE.read_text(encoding="utf-8"))


def _load(data: dict[str, Any]) -> Config:
    return parse_config(data, origin=SAMPLE.name, vault_url=VAULT_URL)


def _alternatives(text: str) -> list[dict[str, Any]]:
    """Return the commented-out tables of the sample (a '# [...' header and its '# key =' lines)."""
    found, block = [], None
    for line in [*text.splitlines(), ""]:
        if line.startswith("# [") and "=" not in line:
            block = [line[2:]]
        elif block is not None and re.match(r"# [a-z_]+ = ", line):
            block.append(line[2:])
        elif block is not None:
            found.append(tomllib.loads("\n".join(block)))
            block = None
    return found


def test_the_sample_configuration_parses() -> None:
    config = _load(_sample())
    assert config.key_vault_url == VAULT_URL
    assert config.warnings() == []
    (target,) = config.targets
    assert target.principal.kind == "managed-identity"  # the recommended default
    assert [u.kind for u in target.updaters] == ["prequel-source"]


def test_the_sample_needs_only_the_vault_setting_for_its_vault() -> None:
    with pytest.raises(ConfigError, match="key_vault_url"):
        parse_config(_sample(), origin=SAMPLE.name)


def test_the_sample_s_commented_keys_are_valid() -> None:
    """Uncommenting every optional key (outside the alternative tables) still parses."""
    lines, in_alternative = [], False
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        in_alternative = (line.startswith("# [") or in_alternative) and line.startswith("#")
        optional = not in_alternative and re.match(r"# [a-z_]+ = ", line)
        lines.append(line[2:] if optional else line)
    config = _load(tomllib.loads("\n".join(lines)))
    assert config.defaults.scopes == ("sql",)
    assert config.targets[0].lifetime_days == 60


def test_the_sample_s_alternatives_are_valid() -> None:
    alternatives = _alternatives(SAMPLE.read_text(encoding="utf-8"))
    principals = [
        a["targets"]["principal"] for a in alternatives if "principal" in a.get("targets", {})
    ]
    updaters = [
        a["targets"]["updaters"][0] for a in alternatives if "updaters" in a.get("targets", {})
    ]
    assert {p["kind"] for p in principals} == {
        "entra-client-secret",
        "databricks-oauth",
        "databricks-obo",
        "self",
    }
    assert {u["kind"] for u in updaters} >= {"prequel-destination", "prequel-import-source"}
    assert {u["kind"] for u in updaters} >= {"github-actions-secret", "webhook"}
    for principal in principals:
        data = _sample()
        data["targets"][0]["principal"] = principal
        assert _load(data).targets[0].principal.kind == principal["kind"]
    for updater in updaters:
        data = _sample()
        data["targets"][0]["updaters"] = [updater]
        assert _load(data).targets[0].updaters[0].kind == updater["kind"]


def test_local_settings_sample_points_at_the_sample() -> None:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert (ROOT / values["ROTATION_CONFIG"]).resolve() == SAMPLE
    assert values["ROTATION_KEY_VAULT_URL"].startswith("https://")


# --- the dashboard: app/workbook.bicep and its panels (app/workbook.json) -------------------------

WORKBOOK = json.loads((INFRA / "app" / "workbook.json").read_text())
PLACEHOLDER = "__WORKSPACE_ID__"
ACROSS_TARGETS = {"outcomes"}  # run panels that sum over all targets on purpose


def _items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return every item of a workbook, those inside groups included."""
    found = []
    for item in items:
        found.append(item)
        found.extend(_items(item.get("content", {}).get("items", [])))
    return found


def _panels() -> dict[str, dict[str, Any]]:
    """Return the query panels (type 3) by name."""
    return {i["name"]: i["content"] for i in _items(WORKBOOK["items"]) if i["type"] == 3}


def _event(kql: str) -> str:
    events = set(re.findall(r'Message\s*==\s*"([^"]*)"', kql))
    assert len(events) == 1, f"a panel reads one event: {events}"
    return events.pop()


def test_the_timer_fields_are_read_from_the_code() -> None:
    assert {"targets", "due"} == TIMER_FIELDS  # what emit_timer writes today; the panels use them


def test_the_dashboard_is_a_shared_workbook_over_the_workspace(template: dict[str, Any]) -> None:
    parsed = _parse(INFRA / "app" / "workbook.bicep")
    resource = parsed["resources"]["workbook"]
    assert resource["type"] == "Microsoft.Insights/workbooks"
    assert resource["api_version"] == "2023-06-01"
    body = _body(resource)
    assert body["name"]["function"]["type"] == "guid"  # Azure requires a GUID name
    assert body["kind"] == "shared"
    assert body["properties"]["category"] == "workbook"
    assert body["properties"]["sourceId"] == "workspaceId"
    data = body["properties"]["serializedData"]["function"]
    assert data["type"] == "replace"
    assert data["parameters"]["original_string"]["function"] == {
        "type": "load_text_content",
        "parameters": {"file_path": "workbook.json", "encoding": None},
    }
    assert data["parameters"]["old_string"] == "workspacePlaceholder"
    assert parsed["variables"]["workspacePlaceholder"]["value"] == PLACEHOLDER
    assert data["parameters"]["new_string"] == "workspaceId"
    module = template["modules"]["dashboard"]
    assert module["detail"]["path"] == "app/workbook.bicep"
    assert module["config"]["params"]["workspaceId"] == _accessor("logs", "id")
    required = {n for n, p in parsed["parameters"].items() if p.get("default") is None}
    assert required <= set(module["config"]["params"])
    url = template["outputs"]["DASHBOARD_URL"]["value"]
    assert (
        url
        == "${environment().portal}/#@${tenant().tenantId}/resource${dashboard.outputs.workbookId}"
    )
    assert parsed["outputs"]["workbookId"]["value"] == _accessor("workbook", "id")
    assert "DASHBOARD_NAME" in template["outputs"]


def test_every_panel_queries_the_workspace() -> None:
    assert WORKBOOK["version"] == "Notebook/1.0"
    assert WORKBOOK["fallbackResourceIds"] == [PLACEHOLDER]
    for name, panel in _panels().items():
        assert panel["queryType"] == 0, name  # Logs (KQL)
        assert panel["resourceType"] == "microsoft.operationalinsights/workspaces", name
        assert panel["crossComponentResources"] == [PLACEHOLDER], name


@pytest.mark.parametrize("name", sorted(_panels()))
def test_each_panel_reads_only_what_the_code_writes(name: str) -> None:
    kql = _panels()[name]["query"]
    assert re.match(r"(let runs = )?AppTraces\n", kql), "one table throughout: AppTraces/Properties"
    assert "customDimensions" not in kql
    event = _event(kql)
    assert event in {RUN_EVENT, TIMER_EVENT}
    named = _properties_named(kql)
    assert named, f"{name} reads no field"
    allowed = FIELDS if event == RUN_EVENT else TIMER_FIELDS
    assert named <= allowed, f"{name} reads fields the code never writes: {named - allowed}"
    if event == RUN_EVENT and name not in ACROSS_TARGETS:
        assert Field.TARGET.value in named, f"{name} must say which target"
    matched = set(re.findall(r'Properties\.outcome\)\s*==\s*"([^"]*)"', kql))
    assert matched <= OUTCOMES, f"{name} matches outcomes the code does not have"


def test_each_panel_uses_only_defined_parameters() -> None:
    defined = {
        p["name"]
        for item in _items(WORKBOOK["items"])
        if item["type"] == 9
        for p in item["content"]["parameters"]
    }
    assert defined == {"TimeRange"}
    for name, panel in _panels().items():
        used = set(re.findall(r"\{(\w+)(?::\w+)?\}", panel["query"]))
        assert used <= defined, name
        if "timeContextFromParameter" in panel:
            assert panel["timeContextFromParameter"] in defined, name


def test_the_dashboard_shows_what_operators_asked_for() -> None:
    """Every target: PAT and credential days left, last outcome, heals, failures; the heartbeat."""
    panels = _panels()
    run_fields: set[str] = set()
    outcomes: set[str] = set()
    charts: dict[str, str] = {}
    for name, panel in panels.items():
        kql = panel["query"]
        if _event(kql) == RUN_EVENT:
            run_fields |= _properties_named(kql)
            outcomes |= set(re.findall(r'Properties\.outcome\)\s*==\s*"([^"]*)"', kql))
        charts[name] = panel["visualization"]
    assert {
        Field.TARGET.value,
        Field.PAT_DAYS_LEFT.value,
        Field.CREDENTIAL_DAYS_LEFT.value,
        Field.OUTCOME.value,
        Field.ERROR_KIND.value,
        Field.REASON.value,
    } <= run_fields
    assert {Outcome.HEALED.value, Outcome.FAILED.value} <= outcomes
    assert charts["pat-days-left"] == charts["credential-days-left"] == "timechart"
    assert charts["heartbeat"] == "timechart"
    assert _event(panels["heartbeat"]["query"]) == TIMER_EVENT
    assert _event(panels["last-heartbeat"]["query"]) == TIMER_EVENT
    targets = panels["targets"]["query"]
    final = targets.rsplit("| project ", 1)[1]
    for column in ("target", "last_outcome", "pat_days_left", "credential_days_left", "heals"):
        assert re.search(rf"\b{column}\b", final), f"the targets table lacks {column}"
    assert re.search(r"\bfailures\b", final)
    assert panels["targets"]["visualization"] == "table"


# --- the README's deploy section follows infra/ ----------------------------------------------------


def _deploy_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Deploying and operating it (azd)")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_names_every_output_and_every_setting(template: dict[str, Any]) -> None:
    section = _deploy_section()
    for output in template["outputs"]:
        assert re.search(rf"\b{output}\b", section), f"README's deploy section never names {output}"
    parameters = (INFRA / "main.parameters.json").read_text()
    settings = set(re.findall(r"\$\{([A-Z_]+)", parameters))
    for setting in settings - {
        "AZURE_ENV_NAME",
        "AZURE_LOCATION",
        "AZURE_PRINCIPAL_ID",
        "AZURE_PRINCIPAL_TYPE",
    }:
        assert re.search(rf"\b{setting}\b", section), (
            f"README's deploy section never names {setting}"
        )


def test_the_readme_lists_every_role_assignment(template: dict[str, Any]) -> None:
    assignments = [
        r
        for r in template["resources"].values()
        if r["type"] == "Microsoft.Authorization/roleAssignments"
    ]
    section = _deploy_section()
    table = section[section.index("| who | role | on | for |") :].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    assert len(rows) == len(assignments)
    words = {3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}
    assert f"{words[len(assignments)]} role assignments" in section


def test_the_readme_s_queries_read_only_what_the_code_writes() -> None:
    blocks = re.findall(r"```kusto\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert blocks
    for block in blocks:
        for query in re.split(r"\n\s*\n", block):
            if "AppTraces" not in query:
                continue
            named = _properties_named(query)
            allowed = TIMER_FIELDS if _event(query) == TIMER_EVENT else FIELDS
            assert named <= allowed, f"README query reads {named - allowed}: {query}"
