"""The clients' transports: one aiohttp session for the Azure SDKs, one httpx client for the rest.

Both trust the public roots plus ``ROTATION_CA_FILE`` when set (the emulators' CA), and share one
TLS context each per run.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rotation import errors
from rotation.backends import USER_AGENT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx
    from azure.core.pipeline.transport import AioHttpTransport

    from rotation.config import Config

__all__ = ["azure_transport", "http_client", "trusting"]


def _environment_matters() -> bool:
    """Return whether aiohttp's ``trust_env`` would find anything: proxy variables or a netrc."""
    import urllib.request  # noqa: PLC0415

    if urllib.request.getproxies_environment():
        return True
    netrc = os.environ.get("NETRC")
    candidates = [Path(netrc)] if netrc else [Path.home() / ".netrc", Path.home() / "_netrc"]
    with contextlib.suppress(OSError, RuntimeError):  # no home folder: no netrc either
        return any(path.is_file() for path in candidates)
    return False


def trusting(context: ssl.SSLContext, ca_file: str | None) -> ssl.SSLContext:
    """Return *context* trusting the CA bundle *ca_file* too (``ROTATION_CA_FILE``), if given.

    The bundle is added to the roots *context* already trusts, never a replacement for them. A
    file that holds no PEM certificate is a ``ConfigError`` naming the setting.
    """
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            msg = (
                f"ROTATION_CA_FILE names {ca_file}, which is not a CA bundle in PEM form "
                f"({getattr(exc, 'reason', None) or type(exc).__name__}): point it at the "
                "emulators' ca.pem (python -m emulators serve writes one), or unset it."
            )
            raise errors.ConfigError(msg) from None
    return context


@asynccontextmanager
async def azure_transport(
    ca_file: str | None = None, *, read_timeout: float | None = None
) -> AsyncIterator[AioHttpTransport]:
    """Yield one aiohttp transport for every Azure client of a run, trusting *ca_file* too.

    Sharing it keeps one connection pool and one TLS context per run instead of one session per
    credential (and, with ``connection_verify``, one TLS context per request). *read_timeout* is its
    connect and read timeout in seconds (azure-core's defaults when None); the clients that use
    it cannot change it. The session trusts the environment (proxy variables, a netrc file) only
    when there is something to find there: aiohttp looks both up in a worker thread on every
    request otherwise.
    """
    import aiohttp  # noqa: PLC0415
    from azure.core.pipeline.transport import AioHttpTransport  # noqa: PLC0415

    context = trusting(ssl.create_default_context(), ca_file)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, limit=100), trust_env=_environment_matters()
    ) as session:
        timeouts = (
            {"connection_timeout": read_timeout, "read_timeout": read_timeout}
            if read_timeout
            else {}
        )
        yield AioHttpTransport(session=session, session_owner=False, **timeouts)


def http_client(config: Config, ca_file: str | None, timeout: float) -> httpx.AsyncClient:
    """Return the HTTP client for Databricks and the consumers: pools per host, one TLS context.

    Every host's pools (:class:`~rotation.backends.http.HostPools`) share the one TLS context
    built here: what httpx trusts by default (certifi, or ``SSL_CERT_FILE``), plus *ca_file*.
    """
    import httpx  # noqa: PLC0415

    from rotation.backends import HostPools  # noqa: PLC0415

    context = trusting(httpx.create_ssl_context(verify=True, trust_env=True), ca_file)
    limits = httpx.Limits(max_connections=max(10, config.concurrency * 2))
    return httpx.AsyncClient(
        verify=context,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        limits=limits,
        transport=HostPools(ssl_context=context, limits=limits),
    )
