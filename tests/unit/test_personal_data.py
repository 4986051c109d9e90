"""Personal data at rest (gateway.personal_data): sealing, binding to a place, keys and ids."""

from __future__ import annotations

import base64

import pytest

from gateway.personal_data import NONCE_BYTES, UnreadableData, Vault, decode_key, key_id
from tests.conftest import TEST_KYC_KEY

KEY_A = decode_key(TEST_KYC_KEY)
KEY_B = b"B" * 32
PLAIN = "Zephyrine Quillfeather"


def test_keys_are_32_bytes_of_standard_or_urlsafe_base64():
    raw = bytes(range(250, 256)) * 5 + b"\xfb\xff"  # has + and / in standard base64
    assert decode_key(base64.b64encode(raw).decode()) == raw
    assert decode_key(base64.urlsafe_b64encode(raw).decode()) == raw
    assert decode_key(f"  {base64.b64encode(raw).decode()}\n") == raw
    with pytest.raises(ValueError, match="a KYC key is 32 bytes"):
        decode_key(base64.b64encode(b"short").decode())
    with pytest.raises(ValueError):
        decode_key("not base64 at all!")


def test_key_ids_name_keys_without_revealing_them():
    assert key_id(KEY_A) == key_id(bytes(KEY_A))
    assert len(key_id(KEY_A)) == 16 and int(key_id(KEY_A), 16) >= 0
    assert key_id(KEY_A) != key_id(KEY_B)
    assert key_id(KEY_A) not in KEY_A.hex()


def test_sealed_text_opens_only_in_its_context():
    vault = Vault(KEY_A)
    kid, blob = vault.seal_text(PLAIN, "customer_field:c1:first_name")
    assert kid == key_id(KEY_A) == vault.current_id
    assert PLAIN.encode() not in blob and len(blob) == NONCE_BYTES + len(PLAIN) + 16
    assert vault.open_text(kid, blob, "customer_field:c1:first_name") == PLAIN
    for other in ("customer_field:c2:first_name", "customer_field:c1:last_name", ""):
        with pytest.raises(UnreadableData, match="failed authentication"):
            vault.open(kid, blob, other)


def test_every_seal_uses_a_fresh_nonce():
    vault = Vault(KEY_A)
    first = vault.seal(b"same", "ctx")[1]
    second = vault.seal(b"same", "ctx")[1]
    assert first != second and first[:NONCE_BYTES] != second[:NONCE_BYTES]


@pytest.mark.parametrize("position", [0, NONCE_BYTES, -1])
def test_a_tampered_value_does_not_open(position):
    vault = Vault(KEY_A)
    kid, blob = vault.seal(b"secret", "ctx")
    broken = bytearray(blob)
    broken[position] ^= 0x01
    with pytest.raises(UnreadableData):
        vault.open(kid, bytes(broken), "ctx")


def test_a_value_under_an_unknown_key_is_unreadable():
    kid, blob = Vault(KEY_B).seal(b"secret", "ctx")
    with pytest.raises(UnreadableData, match=f"no key with id {kid} is configured"):
        Vault(KEY_A).open(kid, blob, "ctx")
    # Claiming another configured key's id does not help either.
    with pytest.raises(UnreadableData, match="failed authentication"):
        Vault(KEY_A).open(key_id(KEY_A), blob, "ctx")


def test_old_keys_open_and_new_data_is_sealed_with_the_current_key():
    old_kid, old_blob = Vault(KEY_A).seal_text(PLAIN, "ctx")
    rotating = Vault(KEY_B, [KEY_A])
    assert rotating.open_text(old_kid, old_blob, "ctx") == PLAIN
    assert rotating.current_id == key_id(KEY_B)
    assert rotating.seal(b"x", "ctx")[0] == key_id(KEY_B)
    assert rotating.is_current(key_id(KEY_B)) and not rotating.is_current(old_kid)
    assert sorted(rotating.key_ids()) == sorted([key_id(KEY_A), key_id(KEY_B)])
    assert (
        Vault.from_texts(base64.b64encode(KEY_B).decode(), [TEST_KYC_KEY]).open_text(
            old_kid, old_blob, "ctx"
        )
        == PLAIN
    )


def test_unicode_text_round_trips():
    vault = Vault(KEY_A)
    text = "Łucja Żółć-Ōno 李"
    assert vault.open_text(*vault.seal_text(text, "c"), "c") == text


def test_digests_are_keyed_and_stable():
    a, b = Vault(KEY_A), Vault(KEY_B)
    assert a.digest("123456") == Vault(KEY_A).digest("123456")
    assert len(a.digest("123456")) == 64
    assert a.digest("123456") != a.digest("123457")
    assert a.digest("123456") != b.digest("123456")
