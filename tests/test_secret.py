"""Secrets stay masked: the Secret type, the logging filter, and the hygiene scanner itself."""

from __future__ import annotations

import logging
import pickle

import pytest

from rotation.backends import BearerAuth, StaticBearerAuth
from rotation.logs import RedactingFilter, redact
from rotation.secret import Secret
from tests import hygiene

VALUE = "dapi" + "5" * 32


def test_secret_never_shows_its_value() -> None:
    s = Secret("hunter2-but-longer")
    for text in (repr(s), str(s), f"{s}", f"{s!r}", f"{s:>30}", repr([s]), repr({"k": s})):
        assert "hunter2" not in text
    assert s.reveal() == "hunter2-but-longer"


def test_secret_cannot_be_pickled_or_changed() -> None:
    s = Secret("abc")
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(AttributeError):
        s._value = "x"  # type: ignore[misc]


def test_auth_objects_do_not_show_tokens() -> None:
    assert "dapi" not in repr(StaticBearerAuth(Secret(VALUE)))
    assert repr(BearerAuth(lambda: None)) == "BearerAuth([secure])"  # type: ignore[arg-type,return-value]


def test_filter_masks_known_values_and_secret_shapes() -> None:
    Secret("my-client-secret-value")
    assert "my-client-secret-value" not in redact("secret is my-client-secret-value.")
    assert VALUE not in redact(f"token {VALUE} leaked")
    assert "abc.def" not in redact("Authorization: Bearer abc.defghijkl")
    assert "sk_prod_" not in redact("key sk_prod_abcdefghijkl")


def test_filter_rewrites_records_with_args_and_exceptions() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "got %s", (VALUE,), None)
    try:
        raise ValueError(VALUE)
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    assert VALUE not in record.getMessage()
    assert record.exc_text is not None
    assert VALUE not in record.exc_text


def test_the_hygiene_scanner_finds_a_planted_secret() -> None:
    planted = "Zq9" * 12
    hits = hygiene.find(
        [("somewhere", f"prefix{planted}suffix"), ("clean", "nothing")], frozenset({planted})
    )
    assert hits == ["somewhere: contains an issued secret"]


async def test_reprs_of_the_runtime_and_its_parts_show_no_secret(world) -> None:  # type: ignore[no-untyped-def]
    seeded = world.target()
    report = await world.rotate_one(seeded)
    token = world.emu.databricks.get(report.token_id)
    assert token is not None
    async with world.runtime(world.config(seeded)) as rt:
        texts = [repr(rt), repr(rt.config), repr(rt.store), repr(report)]
    for text in texts:
        hygiene.record_text("repr", text)
        assert token.value not in text
    assert hygiene.find([("reprs", " ".join(texts))], world.emu.secrets.values()) == []


def test_error_messages_are_masked_at_construction() -> None:
    from rotation.errors import ConsumerError

    echoed = "dapi" + "a" * 32
    exc = ConsumerError(f"Prequel said: token {echoed} is not valid")
    assert echoed not in str(exc)
    assert "[secret]" in str(exc)


def test_filter_masks_string_extras() -> None:
    record = logging.LogRecord("stamina", logging.WARNING, __file__, 1, "retry", None, None)
    record.caused_by = f"ConsumerError('{VALUE}')"
    RedactingFilter().filter(record)
    assert VALUE not in record.caused_by


def test_redaction_masks_values_not_header_syntax() -> None:
    challenge = (
        'WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/t", '
        'resource="https://vault.azure.net"'
    )
    assert redact(challenge) == challenge
    assert redact('{"Authorization": "Bearer abcdefghijkl.mnop"}') == (
        '{"Authorization": "Bearer [secret]"}'
    )
    assert redact("authorization: bearer  abcdefghijkl==") == "authorization: bearer  [secret]"
