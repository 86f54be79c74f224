"""The azd hooks of pat-rotator (azure.yaml); the standard library only, run with the deployer's Python.

    python3 scripts/azd_hook.py preprovision  # the configuration is valid (offline); az is installed and
                                              # signed in; the region offers Flex Consumption
    python3 scripts/azd_hook.py predeploy     # the configuration is valid (offline)
    python3 scripts/azd_hook.py postdeploy    # waits until the key_vault_events function exists,
                                              # then deploys infra/event-subscription.bicep

azd passes the environment's values to a hook as environment variables: AZURE_LOCATION,
AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and, after provisioning, main.bicep's outputs. The
event subscription is an ARM deployment of its own (`az deployment group create`), so running the
hook again (every `azd up` or `azd deploy`) leaves the same subscription in place.
PAT_ROTATOR_FUNCTION_WAIT_SECONDS (default 300) bounds the wait for the function after a deploy,
PAT_ROTATOR_FUNCTION_POLL_SECONDS (default 10) is the time between two looks.

A failure is one line on stderr, starting with "pat-rotator:", and exit status 1: azd then stops.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENT_TEMPLATE = ROOT / "infra" / "event-subscription.bicep"
FUNCTION = "key_vault_events"
DEPLOYMENT = "pat-rotator-event-subscription"
# event-subscription.bicep's parameters ← the main.bicep outputs azd keeps in the environment.
PARAMETERS = {
    "systemTopicName": "EVENT_GRID_TOPIC_NAME",
    "functionAppName": "FUNCTION_APP_NAME",
    "storageAccountName": "STORAGE_ACCOUNT_NAME",
    "deadLetterContainerName": "DEAD_LETTER_CONTAINER",
}
INSTALL_AZ = (
    "the Azure CLI (az) is needed: this hook checks the region and, after deploy, subscribes "
    "key_vault_events to the vault's events with it (and README steps 2-4 use it); install it "
    "(https://aka.ms/installazurecli), run az login, then run azd again"
)


CONFIG_ERROR = 2  # the CLI's exit status for a configuration error


class HookError(Exception):
    """A reason to stop azd, worded as what to do."""


def check_config(env: dict[str, str]) -> None:
    """Fail when ROTATION_CONFIG (default rotation.toml) names a file that does not exist."""
    name = env.get("ROTATION_CONFIG") or "rotation.toml"
    if name.startswith("{") or "=" in name:  # inline JSON/TOML set as an app setting
        return
    if not (ROOT / name).is_file():
        raise HookError(
            f"no configuration file {name}: copy rotation.sample.toml to {name}, describe your "
            "targets, then run azd again (README: Deploying)"
        )
    validate_config(name, env)


def validate_config(name: str, env: dict[str, str]) -> None:
    """Fail when the configuration does not validate (``python -m rotation validate``, offline)."""
    command = [sys.executable, "-m", "rotation", "--config", str(ROOT / name), "validate"]
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=120
    )
    if done.returncode == 0:
        return
    said = next((line for line in done.stderr.splitlines() if line.startswith("error:")), "")
    if done.returncode == CONFIG_ERROR and said:
        raise HookError(
            f"{name} is not valid ({said.removeprefix('error: ')}); `python -m rotation --config "
            f"{name} validate` lists every problem: fix them, then run azd again"
        )
    raise HookError(
        "could not run the offline check `python -m rotation validate` with this Python: "
        "install the CLI's dependencies (pip install . in this folder), then run azd again"
    )


def find_az(env: dict[str, str]) -> str:
    """Return the az executable's path (az.cmd on Windows), or fail saying how to install it."""
    az = shutil.which("az", path=env.get("PATH"))
    if az is None:
        raise HookError(INSTALL_AZ)
    return az


def run_az(az: str, args: list[str], env: dict[str, str]) -> str:
    """Run az in the azd environment's subscription; return its stdout, or fail with its error."""
    subscription = env.get("AZURE_SUBSCRIPTION_ID", "")
    command = [az, *args, *(["--subscription", subscription] if subscription else [])]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        said = lines[-1] if lines else f"exit status {done.returncode}"
        raise HookError(f"az {' '.join(args[:3])} failed: {said}")
    return done.stdout


def check_signed_in(az: str, env: dict[str, str]) -> None:
    """Fail unless az has a signed-in account (azd auth login does not sign az in)."""
    try:
        run_az(az, ["account", "show", "--query", "id", "--output", "tsv"], env)
    except HookError as error:
        raise HookError(
            f"az is not signed in to the environment's subscription ({error}): run az login "
            "(azd auth login does not sign az in), then run azd again"
        ) from None


def region_key(name: str) -> str:
    """Return a region's comparable form: 'East US' and 'eastus' are the same region."""
    return "".join(name.split()).lower()


def check_region(az: str, env: dict[str, str]) -> None:
    """Fail when AZURE_LOCATION offers no Flex Consumption plan; warn when that cannot be told."""
    location = env.get("AZURE_LOCATION", "").strip()
    if not location:
        print("pat-rotator: no region chosen yet (AZURE_LOCATION): Flex Consumption not checked")
        return
    try:
        out = run_az(
            az,
            ["functionapp", "list-flexconsumption-locations", "--query", "[].name", "-o", "tsv"],
            env,
        )
    except HookError as error:
        print(
            f"pat-rotator: warning: could not check that {location} offers Flex Consumption "
            f"({error}); az upgrade may help",
            file=sys.stderr,
        )
        return
    regions = sorted({region_key(line) for line in out.splitlines() if line.strip()})
    if region_key(location) not in regions:
        raise HookError(
            f"region {location} has no Flex Consumption plans (az functionapp "
            f"list-flexconsumption-locations): azd env set AZURE_LOCATION <region> with one of "
            f"{', '.join(regions)}, then run azd up again"
        )


def require(env: dict[str, str], name: str) -> str:
    """Return an azd environment value that provisioning sets, or fail saying so."""
    value = env.get(name, "").strip()
    if not value:
        raise HookError(f"the azd environment has no {name}: run azd provision (or azd up) first")
    return value


def wait_for_function(az: str, env: dict[str, str]) -> None:
    """Wait until the deployed app lists key_vault_events (Flex Consumption indexes after deploy)."""
    group, app = require(env, "AZURE_RESOURCE_GROUP"), require(env, "FUNCTION_APP_NAME")
    wait = float(env.get("PAT_ROTATOR_FUNCTION_WAIT_SECONDS", "300"))
    poll = float(env.get("PAT_ROTATOR_FUNCTION_POLL_SECONDS", "10"))
    show = ["functionapp", "function", "show", "--resource-group", group, "--name", app]
    deadline = time.monotonic() + wait
    while True:
        try:
            run_az(az, [*show, "--function-name", FUNCTION, "--query", "name", "-o", "tsv"], env)
        except HookError as error:
            if time.monotonic() >= deadline:
                raise HookError(
                    f"the function {FUNCTION} did not appear in {app} within {wait:g} s "
                    f"({error}): check the app's deployment in the portal (Deployment Center, "
                    "Log stream), then run azd deploy again to create the Key Vault event "
                    "subscription"
                ) from None
            print(f"pat-rotator: waiting for {app} to list {FUNCTION}")
            time.sleep(poll)
        else:
            return


def deploy_subscription(az: str, env: dict[str, str]) -> None:
    """Deploy event-subscription.bicep with main.bicep's outputs (idempotent: same name, same values)."""
    parameters = [f"{param}={require(env, output)}" for param, output in PARAMETERS.items()]
    group = require(env, "AZURE_RESOURCE_GROUP")
    run_az(
        az,
        [
            "deployment", "group", "create", "--resource-group", group, "--name", DEPLOYMENT,
            "--template-file", str(EVENT_TEMPLATE), "--parameters", *parameters, "--output", "none",
        ],
        env,
    )  # fmt: skip
    print(
        f"pat-rotator: Key Vault events reach {FUNCTION} (subscription pat-rotator-near-expiry on "
        f"{env['EVENT_GRID_TOPIC_NAME']}; dead letters in {env['STORAGE_ACCOUNT_NAME']}/"
        f"{env['DEAD_LETTER_CONTAINER']})"
    )


def run_hook(hook: str, env: dict[str, str]) -> None:
    """Run one hook's checks and actions; raise HookError to stop azd."""
    if hook == "preprovision":
        check_config(env)
        az = find_az(env)
        check_signed_in(az, env)
        check_region(az, env)
    elif hook == "predeploy":
        check_config(env)
    elif hook == "postdeploy":
        az = find_az(env)
        wait_for_function(az, env)
        deploy_subscription(az, env)
    else:
        raise HookError(f"unknown hook {hook!r}: use preprovision, predeploy or postdeploy")


def main(argv: list[str], env: dict[str, str]) -> int:
    """Run the hook named by argv[0]; return the exit status."""
    try:
        run_hook(argv[0] if argv else "", env)
    except HookError as error:
        print(f"pat-rotator: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], dict(os.environ)))
