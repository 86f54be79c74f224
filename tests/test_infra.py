"""The Bicep template parses (pycep) and wires what the app reads; no Bicep compiler exists here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

INFRA = Path(__file__).resolve().parent.parent / "infra"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return BicepParser().parse(file_path=INFRA / "main.bicep")


def test_every_parameter_and_output_is_described(template: dict[str, Any]) -> None:
    for kind in ("parameters", "outputs"):
        for name, item in template[kind].items():
            kinds = [d["type"] for d in item.get("decorators", [])]
            assert "description" in kinds, f"{kind} {name} has no @description"


def test_role_assignments_are_named_with_guid(template: dict[str, Any]) -> None:
    assignments = [
        (name, r)
        for name, r in template["resources"].items()
        if r["type"] == "Microsoft.Authorization/roleAssignments"
    ]
    assert len(assignments) == 4
    for name, resource in assignments:
        assert resource["config"]["name"]["function"]["type"] == "guid", name


def test_the_app_gets_every_setting_the_rotator_reads() -> None:
    text = (INFRA / "main.bicep").read_text()
    names = set(re.findall(r"\{ name: '([A-Za-z_]+)'", text))
    assert {
        "ROTATION_CONFIG",
        "ROTATION_SCHEDULE",
        "ROTATION_QUEUE",
        "ROTATION_FANOUT_THRESHOLD",
        "AzureWebJobsStorage__accountName",
        "AZURE_CLIENT_ID",
    } <= names


def test_key_vault_events_reach_the_function_by_its_name(template: dict[str, Any]) -> None:
    text = (INFRA / "main.bicep").read_text()
    assert "/functions/key_vault_events'" in text
    assert "'Microsoft.KeyVault.SecretNearExpiry', 'Microsoft.KeyVault.SecretExpired'" in text
    assert "nearExpiry" in template["resources"]


def test_parameters_file_names_only_declared_parameters(template: dict[str, Any]) -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(parameters) <= set(template["parameters"])
    required = {n for n, p in template["parameters"].items() if "default" not in p}
    assert required <= set(parameters)
