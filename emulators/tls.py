"""A throwaway certificate authority and a loopback server certificate (trustme)."""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["LoopbackTLS"]


@dataclass(frozen=True, slots=True)
class LoopbackTLS:
    """PEM files of a fresh CA and of a server certificate for 127.0.0.1 and localhost."""

    directory: Path
    ca_path: Path
    cert_path: Path
    key_path: Path

    @classmethod
    def create(cls) -> tuple[LoopbackTLS, tempfile.TemporaryDirectory[str]]:
        """Write a new CA and server certificate to a temporary directory.

        The caller owns the returned `TemporaryDirectory` and cleans it up when done.
        """
        holder = tempfile.TemporaryDirectory(prefix="emulators-tls-")
        directory = Path(holder.name)
        ca = trustme.CA(organization_name="pat-rotator emulators")
        leaf = ca.issue_cert("127.0.0.1", "localhost", "::1")
        tls = cls(
            directory=directory,
            ca_path=directory / "ca.pem",
            cert_path=directory / "server-chain.pem",
            key_path=directory / "server-key.pem",
        )
        ca.cert_pem.write_to_path(str(tls.ca_path))
        leaf.private_key_pem.write_to_path(str(tls.key_path))
        for index, blob in enumerate(leaf.cert_chain_pems):
            blob.write_to_path(str(tls.cert_path), append=index > 0)
        return tls, holder

    def client_context(self) -> ssl.SSLContext:
        """Return a client SSL context that trusts only this CA."""
        return ssl.create_default_context(cafile=str(self.ca_path))
