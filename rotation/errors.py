"""The one exception tree of the rotator.

Every message says what went wrong *and what to do*; none ever contains a secret value.

::

    RotationError                    base; ``transient`` says whether a retry may help
    ├── ConfigError                  the configuration cannot work (CLI exit 2)
    ├── UnknownTargetError           a target name that the configuration does not define
    ├── BusyError                    another run holds the target's lock
    ├── LockLostError                the lock was lost mid-rotation; stopped at a step boundary
    ├── AppStorageError              the app's storage account (locks, queue) cannot be used
    ├── RevocationRefusedError       a revocation the service could not prove ours (I6)
    ├── SecretStoreError             Key Vault refused or failed a call
    │   ├── SecretMissingError       a credential secret named in the config does not exist
    │   └── SecretDisabledError      the (latest) version asked for is disabled
    ├── CredentialError              the principal could not authenticate (Entra / Databricks OAuth)
    │   └── CredentialExpiringError      the principal's credential expires within 7 days
    ├── CredentialRotationError      rotating the principal's own credential failed
    │   ├── CredentialRightsError        a right it needs is missing (the message says how)
    │   ├── CredentialPolicyError        a tenant policy refused the new credential's lifetime
    │   └── CredentialQuotaError         too few free credential slots (Databricks: 5 per SP)
    ├── DatabricksError              the workspace refused or failed a call
    │   ├── TokensDisabledError          PATs are disabled in the workspace
    │   ├── MissingCanUseError           the principal lacks CAN_USE on tokens
    │   ├── PrincipalNotInWorkspaceError the SP was never added to the workspace
    │   ├── TokenQuotaError              600 live tokens per principal reached
    │   ├── LifetimeTooLongError         lifetime above the workspace maximum
    │   ├── OnBehalfOfDisabledError      the workspace refuses on-behalf-of tokens
    │   ├── InvalidTokenError            Databricks rejects a token as invalid or revoked
    │   └── VerificationError            a new PAT answers as the wrong principal
    └── ConsumerError                an updater's consumer (e.g. Prequel) refused or failed
        ├── ConsumerAuthError            the consumer rejected our API key
        └── ConsumerRejectedTokenError   the consumer tested the new PAT and it failed

One rule for translating a library's error at a boundary: ``raise OurError(msg) from None``. The
message carries everything a person needs (what failed, where, what to do); the library's error
is left out of the chain because it may quote a URL, a header or a body we do not control — a
traceback is never a place for a credential.
"""

from __future__ import annotations

from rotation.logs import redact

__all__ = [
    "AppStorageError",
    "BusyError",
    "ConfigError",
    "ConsumerAuthError",
    "ConsumerError",
    "ConsumerRejectedTokenError",
    "CredentialError",
    "CredentialExpiringError",
    "CredentialPolicyError",
    "CredentialQuotaError",
    "CredentialRightsError",
    "CredentialRotationError",
    "DatabricksError",
    "InvalidTokenError",
    "LifetimeTooLongError",
    "LockLostError",
    "MissingCanUseError",
    "OnBehalfOfDisabledError",
    "PrincipalNotInWorkspaceError",
    "RevocationRefusedError",
    "RotationError",
    "SecretDisabledError",
    "SecretMissingError",
    "SecretStoreError",
    "TokenQuotaError",
    "TokensDisabledError",
    "UnknownTargetError",
    "VerificationError",
]


class RotationError(Exception):
    """Base of every error the rotator raises on purpose."""

    transient: bool = False
    """Whether retrying the same call later may succeed (5xx, 429, network)."""

    retry_after: float | None = None
    """Seconds the server asked us to wait before retrying (``Retry-After``), if it said."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        # Messages quote other services' words, which could echo a credential: mask it here,
        # once, so that no report, HTTP body or CLI output built from a message can show one.
        super().__init__(redact(message))
        if transient is not None:
            self.transient = transient
        self.retry_after = retry_after

    @property
    def kind(self) -> str:
        """Return a stable, machine-readable name for the error (used in JSON reports)."""
        name = type(self).__name__.removesuffix("Error")
        return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


class ConfigError(RotationError):
    """The configuration cannot work; the message lists every problem with its field path.

    ``problems`` holds one line per problem (``origin: path: what to do``); a message that is
    itself one problem is its own only line.
    """

    def __init__(self, message: str, *, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(redact(p) for p in problems) or (str(self),)


class UnknownTargetError(RotationError):
    """A target name that the configuration does not define."""


class BusyError(RotationError):
    """Another run holds the target's lock; try again when it finishes."""

    transient = True


class LockLostError(RotationError):
    """The target's lock was lost mid-rotation; the run stopped at a step boundary."""

    transient = True


class AppStorageError(RotationError):
    """The app's storage account (``AzureWebJobsStorage``: locks and the fan-out queue) failed."""

    transient = True


class RevocationRefusedError(RotationError):
    """A revocation was refused: Databricks does not show the token as this target's, replaced."""


class SecretStoreError(RotationError):
    """Key Vault refused or failed a call."""


class SecretMissingError(SecretStoreError):
    """A secret that the configuration names does not exist in Key Vault."""


class SecretDisabledError(SecretStoreError):
    """The secret version asked for is disabled (Key Vault's ``SecretDisabled``)."""


class CredentialError(RotationError):
    """The service principal (or admin) could not authenticate."""


class CredentialExpiringError(CredentialError):
    """The principal's own credential expires soon and no newer one is stored."""


class CredentialRotationError(RotationError):
    """Rotating the principal's own credential (client secret, OAuth secret) failed."""

    outcome_unknown: bool = False
    """A create may have happened though its answer was lost: never repeated (swept later)."""


class CredentialRightsError(CredentialRotationError):
    """The principal lacks a right credential rotation needs; the message names how to grant it."""


class CredentialPolicyError(CredentialRotationError):
    """A tenant policy refused the new credential (e.g. its lifetime); nothing was created."""


class CredentialQuotaError(CredentialRotationError):
    """Too few free credential slots to rotate safely; nothing was created."""


class DatabricksError(RotationError):
    """The Databricks workspace refused or failed a call."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        transient: bool | None = None,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, transient=transient, retry_after=retry_after)
        self.status = status
        self.error_code = error_code
        self.outcome_unknown = outcome_unknown
        """The request may have been carried out (5xx, or the answer was lost after sending)."""


class TokensDisabledError(DatabricksError):
    """Personal access tokens are disabled in the workspace."""


class MissingCanUseError(DatabricksError):
    """The principal lacks the CAN_USE permission on tokens."""


class PrincipalNotInWorkspaceError(DatabricksError):
    """The service principal has not been added to the workspace."""


class TokenQuotaError(DatabricksError):
    """The principal already holds the maximum number of live tokens (600)."""


class LifetimeTooLongError(DatabricksError):
    """The requested token lifetime exceeds the workspace's maximum."""


class OnBehalfOfDisabledError(DatabricksError):
    """The workspace refuses on-behalf-of token creation for service principals."""


class InvalidTokenError(DatabricksError):
    """Databricks rejects a token as invalid, expired or revoked."""


class VerificationError(DatabricksError):
    """A new PAT works but answers as a principal other than the configured one."""


class ConsumerError(RotationError):
    """A consumer of the PAT (an updater's service) refused or failed a call."""


class ConsumerAuthError(ConsumerError):
    """The consumer rejected our API key."""


class ConsumerRejectedTokenError(ConsumerError):
    """The consumer tested the new PAT and reported a failure."""
