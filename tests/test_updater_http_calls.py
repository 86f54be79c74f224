"""Each HTTP consumer says, in its own words, that it could not be reached or is not trusted.

The five consumers share one translation of a failed call (``rotation.updaters.http_calls``);
these pin every message to the letter, so that sharing it changed none of them.
"""

from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING

import pytest

from emulators.scenario import DEVOPS_ORGANIZATION
from rotation.backends.http import UNTRUSTED_ADVICE
from rotation.errors import ConsumerError
from tests.test_cli_field import _untrusted_tls_server
from tests.world import FAST, World

if TYPE_CHECKING:
    from emulators.scenario import ConsumerKind

# kind: (its URL setting, the path it puts after the URL, who it could not reach, the end)
UNREACHABLE: dict[ConsumerKind, tuple[str, str, str, str]] = {
    "prequel-source": ("base_url", "", "Prequel at {url}", "retrying later may help"),
    "azure-devops-variable-group": ("organization_url", "/contoso", "{url}", "retrying"),
    "fivetran-destination": ("api_url", "", "Fivetran at {url}", "retrying"),
    "github-actions-secret": ("api_url", "", "GitHub at {url}", "retrying later may help"),
    "webhook": ("url", "/pat", "the webhook receiver at {url}", "retrying later may help"),
}
UNTRUSTED: dict[ConsumerKind, str] = {
    "prequel-source": "Prequel at {url}: its TLS certificate",
    "azure-devops-variable-group": "Azure DevOps variable group {id} of "
    + DEVOPS_ORGANIZATION
    + ": the TLS certificate of {url}",
    "fivetran-destination": "Fivetran at {url}: its TLS certificate",
    "github-actions-secret": "GitHub at {url}: its TLS certificate",
    "webhook": "the webhook receiver at {url}: its TLS certificate",
}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _preflight_error(world: World, kind: ConsumerKind, url: str) -> tuple[ConsumerError, str]:
    """Preflight *kind*'s seeded updater pointed at *url*; return its error and the URL it used."""
    from rotation.updaters import UpdaterContext
    from rotation.updaters.registry import plugin

    seeded = world.target(consumers=(kind,))
    field, path, _, _ = UNREACHABLE[kind]
    spec = world.config(seeded).targets[0].updaters[0]
    settings = spec.settings.model_copy(update={field: url + path})
    async with world.runtime(world.config(seeded)) as rt:
        updater = plugin(kind).build(settings, UpdaterContext(rt.http, rt.store, FAST, rt.azure))
        with pytest.raises(ConsumerError) as caught:
            await updater.preflight()
    return caught.value, seeded.consumers[0].id


@pytest.mark.parametrize("kind", list(UNREACHABLE))
async def test_a_consumer_nobody_answers_for_is_transient_and_named(
    world: World, kind: ConsumerKind
) -> None:
    url = f"https://127.0.0.1:{_closed_port()}"
    error, _ = await _preflight_error(world, kind, url)
    _, path, who, end = UNREACHABLE[kind]
    assert str(error) == f"Could not reach {who.format(url=url + path)} (ConnectError); {end}."
    assert error.transient is True


@pytest.mark.parametrize("kind", list(UNTRUSTED))
async def test_a_consumer_with_an_untrusted_certificate_is_final_and_named(
    world: World, kind: ConsumerKind
) -> None:
    with _untrusted_tls_server() as url:
        error, cid = await _preflight_error(world, kind, url)
    whose = UNTRUSTED[kind].format(url=url + UNREACHABLE[kind][1], id=cid)
    pattern = rf"{re.escape(whose)} is not trusted \([^)]+\); {re.escape(UNTRUSTED_ADVICE)}\."
    assert re.fullmatch(pattern, str(error)), str(error)
    assert error.transient is False


# kind: (its emulator, the method of its preflight's first call, where its messages say it was)
REFUSED: dict[ConsumerKind, tuple[str, str, str]] = {
    "prequel-source": ("prequel", "GET", "Prequel source {id} at {s.base_url} (GET)"),
    "azure-devops-variable-group": (
        "devops",
        "GET",
        "Azure DevOps variable group {id} of " + DEVOPS_ORGANIZATION + " (GET)",
    ),
    "fivetran-destination": ("fivetran", "GET", "Fivetran destination {id} at {s.api_url} (GET)"),
    "github-actions-secret": ("github", "GET", "GitHub (read the public key, {s.owner}/{s.repo})"),
    "webhook": ("webhook", "POST", "the webhook receiver at {s.url} (pat.test)"),
}
OTHERWISE: dict[ConsumerKind, str] = {  # what a 400 the consumer has no advice for reads
    "prequel-source": "{where} refused the request (400: nope).",
    "azure-devops-variable-group": "{where} answered 400: nope.",
    "fivetran-destination": "{where} answered 400: nope.",
    "github-actions-secret": "{where} refused the request (400: nope).",
    "webhook": "{where} refused the delivery as malformed (400: nope); see docs/webhook-receiver.md.",
}


@pytest.mark.parametrize("status", [503, 400])
@pytest.mark.parametrize("kind", list(REFUSED))
async def test_a_refusal_reads_the_same_for_each_consumer(
    world: World, kind: ConsumerKind, status: int
) -> None:
    """A transient status reads alike everywhere; another one in each consumer's own words."""
    from rotation.updaters import UpdaterContext
    from rotation.updaters.registry import plugin

    service, method, where = REFUSED[kind]
    seeded = world.target(consumers=(kind,))
    spec = world.config(seeded).targets[0].updaters[0]
    where = where.format(id=seeded.consumers[0].id, s=spec.settings)
    said = {"message": "nope", "reason": "nope"}
    world.emu.faults.add(service, method, ".*", status=status, body=said, times=-1)
    async with world.runtime(world.config(seeded)) as rt:
        context = UpdaterContext(rt.http, rt.store, FAST, rt.azure)
        updater = plugin(kind).build(spec.settings, context)
        with pytest.raises(ConsumerError) as caught:
            await updater.preflight()
    transient = f"{where} answered 503: nope. Transient; retried, and the next run resumes."
    expected = transient if status == 503 else OTHERWISE[kind].format(where=where)
    assert str(caught.value) == expected
    assert caught.value.transient is (status == 503)
