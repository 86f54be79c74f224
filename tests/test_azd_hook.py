"""The azd hooks (scripts/azd_hook.py) run as azd runs them, against a stand-in `az` on PATH.

No Azure here: the stand-in is an executable named `az` that records each call and answers from a
plan (per command: exit status, stdout, stderr; the last answer repeats), so the hook's own logic
is what is tested — which commands it runs with which values, how long it waits, what it says.
The hook's parameters are tied to infra/event-subscription.bicep's and main.bicep's outputs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

ROOT = Path(__file__).resolve().parent.parent
HOOK = ROOT / "scripts" / "azd_hook.py"

FAKE_AZ = """#!{python}
import json, sys
plan_path, log_path = {plan!r}, {log!r}
args = sys.argv[1:]
with open(log_path, "a") as log:
    log.write(json.dumps(args) + "\\n")
with open(plan_path) as f:
    plan = json.load(f)
for rule in plan:
    if args[: len(rule["command"])] == rule["command"]:
        answer = rule["answers"][0]
        if len(rule["answers"]) > 1:
            rule["answers"].pop(0)
        with open(plan_path, "w") as f:
            json.dump(plan, f)
        sys.stdout.write(answer.get("out", ""))
        sys.stderr.write(answer.get("err", ""))
        sys.exit(answer.get("rc", 0))
sys.stderr.write("ERROR: the stand-in has no answer for " + " ".join(args) + "\\n")
sys.exit(2)
"""

OUTPUTS = {
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
    "AZURE_RESOURCE_GROUP": "rg-pat",
    "AZURE_LOCATION": "eastus",
    "FUNCTION_APP_NAME": "func-tok",
    "EVENT_GRID_TOPIC_NAME": "evgt-tok",
    "STORAGE_ACCOUNT_NAME": "sttok",
    "DEAD_LETTER_CONTAINER": "eventgrid-deadletter",
}
SIGNED_IN = {"command": ["account", "show"], "answers": [{"out": "sub\n"}]}
FLEX = ["functionapp", "list-flexconsumption-locations"]
SHOW = ["functionapp", "function", "show"]
CREATE = ["deployment", "group", "create"]


class Az:
    """The stand-in az: a plan of answers and the log of calls."""

    def __init__(self, tmp_path: Path) -> None:
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.plan = tmp_path / "plan.json"
        self.log = tmp_path / "calls.jsonl"
        self.log.touch()
        az = self.bin / "az"
        az.write_text(FAKE_AZ.format(python=sys.executable, plan=str(self.plan), log=str(self.log)))
        az.chmod(0o755)

    def answers(self, *rules: dict[str, Any]) -> None:
        self.plan.write_text(json.dumps(list(rules)))

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def az(tmp_path: Path) -> Az:
    return Az(tmp_path)


def run(
    hook: str, path: Path, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": str(path),
        "SYSTEMROOT": os.environ.get("SYSTEMROOT", ""),
        "PAT_ROTATOR_FUNCTION_POLL_SECONDS": "0",
        "ROTATION_CONFIG": "rotation.sample.toml",
        **OUTPUTS,
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, str(HOOK), hook],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        check=False,
        timeout=60,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("pat-rotator: ")
    assert "Traceback" not in done.stderr
    return lines[0]


# --- preprovision / predeploy: the configuration file ------------------------------------------


@pytest.mark.parametrize("hook", ["preprovision", "predeploy"])
def test_a_missing_configuration_file_stops_azd_before_az_is_asked(az: Az, hook: str) -> None:
    az.answers(SIGNED_IN)
    done = run(hook, az.bin, {"ROTATION_CONFIG": "no-such.toml"})
    assert done.returncode == 1
    line = one_line(done)
    assert "no configuration file no-such.toml" in line
    assert "copy rotation.sample.toml to no-such.toml" in line
    assert az.calls() == []


@pytest.mark.parametrize("hook", ["preprovision", "predeploy"])
def test_an_invalid_configuration_stops_azd_before_az_is_asked(
    az: Az, hook: str, tmp_path: Path
) -> None:
    bad = tmp_path / "rotation.toml"
    bad.write_text('key_vault_url = "https://user:pw@v.vault.azure.net"\n[[targets]]\nname = "x"\n')
    az.answers(SIGNED_IN)
    done = run(hook, az.bin, {"ROTATION_CONFIG": str(bad)})
    assert done.returncode == 1
    line = one_line(done)
    assert "is not valid" in line
    assert "validate" in line
    assert "pw" not in line
    assert az.calls() == []


def test_an_inline_configuration_is_not_looked_for_as_a_file(az: Az) -> None:
    done = run("predeploy", az.bin, {"ROTATION_CONFIG": "key_vault_url = 'x'"})
    assert done.returncode == 0, done.stderr


# --- preprovision: az and the region -------------------------------------------------------------


def test_without_az_preprovision_says_to_install_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run("preprovision", empty)
    assert done.returncode == 1
    line = one_line(done)
    assert "Azure CLI (az) is needed" in line
    assert "https://aka.ms/installazurecli" in line


def test_az_not_signed_in_stops_azd_and_says_az_login(az: Az) -> None:
    az.answers(
        {
            "command": ["account", "show"],
            "answers": [{"rc": 1, "err": "ERROR: Please run 'az login' to setup account.\n"}],
        }
    )
    done = run("preprovision", az.bin)
    assert done.returncode == 1
    line = one_line(done)
    assert "run az login" in line
    assert "azd auth login does not sign az in" in line
    assert az.calls() == [
        [
            "account",
            "show",
            "--query",
            "id",
            "--output",
            "tsv",
            "--subscription",
            OUTPUTS["AZURE_SUBSCRIPTION_ID"],
        ]
    ]


def test_a_region_without_flex_consumption_stops_azd_naming_the_ones_that_have_it(az: Az) -> None:
    az.answers(SIGNED_IN, {"command": FLEX, "answers": [{"out": "North Europe\nwestus2\n"}]})
    done = run("preprovision", az.bin, {"AZURE_LOCATION": "westindia"})
    assert done.returncode == 1
    line = one_line(done)
    assert "region westindia has no Flex Consumption plans" in line
    assert "northeurope, westus2" in line
    assert "azd env set AZURE_LOCATION" in line
    assert az.calls()[1] == [
        *FLEX, "--query", "[].name", "-o", "tsv", "--subscription", OUTPUTS["AZURE_SUBSCRIPTION_ID"]
    ]  # fmt: skip


@pytest.mark.parametrize("listed", ["East US", "eastus"])
def test_a_region_with_flex_consumption_passes_whatever_form_az_lists(az: Az, listed: str) -> None:
    az.answers(SIGNED_IN, {"command": FLEX, "answers": [{"out": f"westus2\n{listed}\n"}]})
    done = run("preprovision", az.bin, {"AZURE_LOCATION": "eastus"})
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_a_region_that_cannot_be_checked_is_a_warning_not_a_stop(az: Az) -> None:
    az.answers(
        SIGNED_IN,
        {
            "command": FLEX,
            "answers": [{"rc": 2, "err": "az: 'list-flexconsumption-locations' is misspelled\n"}],
        },
    )
    done = run("preprovision", az.bin)
    assert done.returncode == 0
    line = one_line(done)
    assert line.startswith(
        "pat-rotator: warning: could not check that eastus offers Flex Consumption"
    )


def test_no_region_yet_is_not_checked(az: Az) -> None:
    az.answers(SIGNED_IN)
    done = run("preprovision", az.bin, {"AZURE_LOCATION": ""})
    assert done.returncode == 0, done.stderr
    assert [c[:2] for c in az.calls()] == [["account", "show"]]


# --- postdeploy: the event subscription ----------------------------------------------------------


def test_postdeploy_waits_for_the_function_then_deploys_the_subscription(az: Az) -> None:
    not_yet = {"rc": 3, "err": "ERROR: (NotFound) Error retrieving function.\n"}
    az.answers(
        {"command": SHOW, "answers": [not_yet, not_yet, {"out": "func-tok/key_vault_events\n"}]},
        {"command": CREATE, "answers": [{}]},
    )
    done = run("postdeploy", az.bin)
    assert done.returncode == 0, done.stderr
    calls = az.calls()
    assert [c[:3] for c in calls] == [SHOW, SHOW, SHOW, CREATE]
    assert calls[0] == [
        *SHOW, "--resource-group", "rg-pat", "--name", "func-tok", "--function-name", "key_vault_events",
        "--query", "name", "-o", "tsv", "--subscription", OUTPUTS["AZURE_SUBSCRIPTION_ID"],
    ]  # fmt: skip
    assert calls[3] == [
        *CREATE, "--resource-group", "rg-pat", "--name", "pat-rotator-event-subscription",
        "--template-file", str(ROOT / "infra" / "event-subscription.bicep"),
        "--parameters", "systemTopicName=evgt-tok", "functionAppName=func-tok",
        "storageAccountName=sttok", "deadLetterContainerName=eventgrid-deadletter",
        "--output", "none", "--subscription", OUTPUTS["AZURE_SUBSCRIPTION_ID"],
    ]  # fmt: skip
    assert done.stdout.count("waiting for func-tok to list key_vault_events") == 2
    assert "dead letters in sttok/eventgrid-deadletter" in done.stdout


def test_postdeploy_run_again_deploys_the_same_subscription_again(az: Az) -> None:
    az.answers({"command": SHOW, "answers": [{"out": "x\n"}]}, {"command": CREATE, "answers": [{}]})
    first, second = run("postdeploy", az.bin), run("postdeploy", az.bin)
    assert first.returncode == second.returncode == 0
    creates = [c for c in az.calls() if c[:3] == CREATE]
    assert len(creates) == 2
    assert creates[0] == creates[1]  # same deployment name, same template, same values


def test_a_function_that_never_appears_stops_azd_without_deploying(az: Az) -> None:
    az.answers({"command": SHOW, "answers": [{"rc": 3, "err": "ERROR: (NotFound) nope\n"}]})
    done = run("postdeploy", az.bin, {"PAT_ROTATOR_FUNCTION_WAIT_SECONDS": "0"})
    assert done.returncode == 1
    line = one_line(done)
    assert "the function key_vault_events did not appear in func-tok within 0 s" in line
    assert "run azd deploy again" in line
    assert all(c[:3] == SHOW for c in az.calls())


def test_a_failed_subscription_deployment_says_what_az_said(az: Az) -> None:
    az.answers(
        {"command": SHOW, "answers": [{"out": "x\n"}]},
        {
            "command": CREATE,
            "answers": [{"rc": 1, "err": 'WARNING: x\nERROR: {"code": "AuthorizationFailed"}\n'}],
        },
    )
    done = run("postdeploy", az.bin)
    assert done.returncode == 1
    assert 'az deployment group create failed: ERROR: {"code": "AuthorizationFailed"}' in one_line(
        done
    )


def test_postdeploy_before_provisioning_says_to_provision(az: Az) -> None:
    az.answers({"command": SHOW, "answers": [{"out": "x\n"}]})
    done = run("postdeploy", az.bin, {"EVENT_GRID_TOPIC_NAME": ""})
    assert done.returncode == 1
    assert "the azd environment has no EVENT_GRID_TOPIC_NAME: run azd provision" in one_line(done)


def test_an_unknown_hook_is_one_line(az: Az) -> None:
    done = run("postprovision", az.bin)
    assert done.returncode == 1
    assert "unknown hook 'postprovision'" in one_line(done)


# --- the hook, azure.yaml and the templates agree ------------------------------------------------


def test_azure_yaml_runs_the_hook_for_each_event_on_both_shells() -> None:
    text = (ROOT / "azure.yaml").read_text()
    hooks = text[text.index("\nhooks:\n") :]
    found = re.findall(
        r"^  (\w+):\n    posix:\n      shell: sh\n      run: (.+)\n"
        r"    windows:\n      shell: pwsh\n      run: (.+)$",
        hooks,
        re.MULTILINE,
    )
    assert found == [
        (event, f"python3 scripts/azd_hook.py {event}", f"python scripts/azd_hook.py {event}")
        for event in ("preprovision", "predeploy", "postdeploy")
    ]
    assert hooks.count("run:") == 6  # nothing else runs


def test_the_hook_fills_every_parameter_of_the_subscription_from_a_main_output() -> None:
    parser = BicepParser()
    events = parser.parse(file_path=ROOT / "infra" / "event-subscription.bicep")
    main = parser.parse(file_path=ROOT / "infra" / "main.bicep")
    mapping = {
        "systemTopicName": "EVENT_GRID_TOPIC_NAME",
        "functionAppName": "FUNCTION_APP_NAME",
        "storageAccountName": "STORAGE_ACCOUNT_NAME",
        "deadLetterContainerName": "DEAD_LETTER_CONTAINER",
    }
    assert set(events["parameters"]) == set(mapping)
    assert set(mapping.values()) <= set(main["outputs"])
    source = HOOK.read_text()
    for parameter, output in mapping.items():
        assert f'"{parameter}": "{output}"' in source
