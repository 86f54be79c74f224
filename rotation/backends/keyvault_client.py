"""Key Vault's client: its challenge, and its throttle policy (429s sent again, jittered).

Key Vault limits each vault to 300 secret creates and 4,000 other transactions per 10 s (a sliding
window) and answers 429 without ``Retry-After``; :func:`key_vault_retry` sends a throttled request
again whatever its method, within ``throttle_timeout``.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any, cast

from azure.core.pipeline.policies import AsyncRetryPolicy

from rotation.backends.http import USER_AGENT, is_loopback

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.core.pipeline import PipelineRequest, PipelineResponse
    from azure.core.pipeline.transport import AsyncHttpTransport
    from azure.keyvault.secrets.aio import SecretClient

    from rotation.backends.azure import AzureOptions
    from rotation.backends.retry import RetryPolicy

__all__ = ["KeyVaultRetryPolicy", "key_vault_client", "throttle_wait"]

_THROTTLED = 429
_log = logging.getLogger(__name__)


def key_vault_client(
    vault_url: str, credential: AsyncTokenCredential, retry: RetryPolicy, azure: AzureOptions
) -> SecretClient:
    """Return the vault's client, retrying as *retry* says (:class:`KeyVaultRetryPolicy`)."""
    from azure.keyvault.secrets.aio import SecretClient  # noqa: PLC0415

    return SecretClient(
        vault_url,
        credential,
        verify_challenge_resource=not is_loopback(vault_url),
        retry_policy=KeyVaultRetryPolicy(retry),
        user_agent=USER_AGENT,
        **azure.client_kwargs(),
    )


def throttle_wait(
    policy: RetryPolicy, retry_after: float | None, throttled: int, waited: float
) -> float | None:
    """Return how long to wait before sending a request Key Vault throttled again, or None.

    *throttled* counts the 429s in a row so far, *waited* the seconds already waited for them.
    ``Retry-After`` when given (above ``max_retry_after``: None, give up); otherwise, as Key Vault
    sends none, a wait doubling from ``throttle_wait_initial`` to ``throttle_wait_max``, each
    50-100 % of that. None once the waits would pass ``throttle_timeout`` in all.
    """
    if retry_after is not None:
        wait = retry_after if retry_after <= policy.max_retry_after else None
    else:
        ceiling = min(policy.throttle_wait_max, policy.throttle_wait_initial * 2 ** (throttled - 1))
        wait = float(ceiling * random.uniform(0.5, 1.0))  # noqa: S311 # nosec B311 - jitter
    if wait is None or waited + wait > policy.throttle_timeout:
        return None
    return wait


class KeyVaultRetryPolicy(AsyncRetryPolicy[Any, Any]):
    """The vault client's retry policy: azure-core's, but a 429 is sent again on its own budget.

    Everything but 429 is azure-core's retry policy as *policy* configures it: ``attempts - 1``
    retries, exponential backoff from ``wait_initial`` up to ``wait_max``, ``Retry-After``
    honoured. A 429 is Key Vault's throttling (300 secret creates and 4,000 other transactions per
    10 s per vault): the request was not processed, so it is sent again whatever its method, as
    :func:`throttle_wait` says — short waits use each window's capacity as it frees, and jitter
    keeps the senders from hammering in step (429s do not count against the limit).
    """

    def __init__(self, policy: RetryPolicy) -> None:
        super().__init__(
            retry_total=max(0, policy.attempts - 1),
            retry_backoff_factor=policy.wait_initial,
            retry_backoff_max=policy.wait_max,
        )
        self.policy = policy

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        """Return azure-core's verdict, but never for a 429 (:meth:`send` sends those again)."""
        if response.http_response.status_code == _THROTTLED:
            return False  # sent again by send(), on its own budget
        return bool(super().is_retry(settings, response))

    async def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        """Send *request*; while Key Vault throttles it, wait as :func:`throttle_wait` says."""
        transport = cast("AsyncHttpTransport[Any, Any]", request.context.transport)
        throttled, waited = 0, 0.0
        while True:
            response = await super().send(request)
            if response.http_response.status_code != _THROTTLED:
                return response
            throttled += 1
            retry_after = self.get_retry_after(response)
            wait = throttle_wait(self.policy, retry_after, throttled, waited)
            if wait is None:
                return response
            waited += wait
            _log.info(
                "Key Vault throttled a request (429, %d in a row); sending it again in %.1f s",
                throttled,
                wait,
            )
            await transport.sleep(wait)
