"""What the HTTP consumers' calls share: a failed call and a refusal, in the same words for each.

:class:`Reach` awaits one request and turns a transport failure into a ``ConsumerError`` that
names the consumer: a server certificate that is not trusted is final (retrying cannot help),
anything else transient. :func:`refusal` turns an answer that is not a success into the
consumer's error: a transient status (retried, honouring ``Retry-After``) the same way for every
consumer, any other status through the consumer's own advice (what to check on a 401, 403,
404, …), else "refused the request".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import httpx

from rotation import errors
from rotation.backends.http import (
    UNTRUSTED_ADVICE,
    is_transient_status,
    json_body,
    retry_after,
    untrusted_certificate,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["Advice", "Reach", "json_answer", "refusal"]

Advice: TypeAlias = "Callable[[str, int, str], errors.ConsumerError | None]"
"""A consumer's own error for ``(where, status, said)``; None leaves it to :func:`refusal`."""


@dataclass(frozen=True, slots=True)
class Reach:
    """How a consumer's failed calls name it."""

    name: str
    """Who could not be reached, e.g. ``Prequel at https://api.prequel.co``."""
    certificate: str = ""
    """Whose certificate was refused; empty: ``"{name}: its TLS certificate"``."""
    hint: str = "retrying later may help"
    """What a transient failure's message ends with."""

    async def answer(self, request: Awaitable[httpx.Response]) -> httpx.Response:
        """Return *request*'s response; a transport failure raises :meth:`failure`'s error."""
        try:
            return await request
        except httpx.TransportError as exc:
            raise self.failure(exc) from None

    def failure(self, exc: BaseException) -> errors.ConsumerError:
        """Return the error for a call that failed with *exc* before any answer."""
        if (why := untrusted_certificate(exc)) is not None:
            whose = self.certificate or f"{self.name}: its TLS certificate"
            msg = f"{whose} is not trusted ({why}); {UNTRUSTED_ADVICE}."
            return errors.ConsumerError(msg, transient=False)
        msg = f"Could not reach {self.name} ({type(exc).__name__}); {self.hint}."
        return errors.ConsumerError(msg, transient=True)


def refusal(
    response: httpx.Response,
    where: str,
    said: str,
    advice: Advice,
) -> errors.ConsumerError:
    """Return the error for *response*, an answer that is not a success.

    *where* names the call (the consumer, the method) and *said* is what the consumer said. A
    transient status is retried (its ``Retry-After`` honoured) and the next run resumes;
    otherwise ``advice(where, status, said)``, or "refused the request" when that is None.
    """
    status = response.status_code
    if is_transient_status(status):
        return errors.ConsumerError(
            f"{where} answered {status}: {said}. Transient; retried, and the next run resumes.",
            transient=True,
            retry_after=retry_after(response),
        )
    found = advice(where, status, said)
    if found is not None:
        return found
    return errors.ConsumerError(f"{where} refused the request ({status}: {said}).")


def json_answer(response: httpx.Response, where: str, advice: Advice) -> dict[str, Any]:
    """Return the JSON object body of *response* if it is a success, else raise its refusal.

    What the consumer said is the body's ``message``, else the status's reason phrase.
    """
    body = json_body(response)
    if response.is_success:
        return body
    raise refusal(response, where, str(body.get("message") or response.reason_phrase), advice)
