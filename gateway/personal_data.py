"""Personal data at rest: XChaCha20-Poly1305 with a key id beside every sealed value.

Each value is bound to where it lives (its ``context``, e.g. ``customer_field:<id>:<name>``)
as associated data, so a ciphertext moved to another row or field does not open. Several keys
can open data during a rotation; new data is always sealed with the current key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

from nacl import bindings as sodium
from nacl.exceptions import CryptoError
from nacl.utils import random as random_bytes

NONCE_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES


class UnreadableData(Exception):
    """A sealed value whose key is not configured, or that fails authentication."""


def decode_key(text: str) -> bytes:
    raw = text.strip()
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError:
        key = base64.urlsafe_b64decode(raw)
    if len(key) != 32:
        raise ValueError("a KYC key is 32 bytes")
    return key


def _digest_key(key: bytes) -> bytes:
    return hashlib.sha256(b"gateway-kyc-digest:" + key).digest()


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"gateway-kyc-key-id:" + key).hexdigest()[:16]


class Vault:
    def __init__(self, current: bytes, old: Iterable[bytes] = ()):
        self._keys = {key_id(k): k for k in (*old, current)}
        self.current_id = key_id(current)
        self._digest_key = _digest_key(current)
        self._old_digest_keys = [_digest_key(k) for k in old]

    @classmethod
    def from_texts(cls, current: str, old: Iterable[str] = ()) -> Vault:
        return cls(decode_key(current), [decode_key(k) for k in old])

    def seal(self, plaintext: bytes, context: str) -> tuple[str, bytes]:
        """(key id, nonce + ciphertext) of ``plaintext`` bound to ``context``."""
        nonce = random_bytes(NONCE_BYTES)
        sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, context.encode(), nonce, self._keys[self.current_id]
        )
        return self.current_id, nonce + sealed

    def open(self, kid: str, blob: bytes, context: str) -> bytes:
        key = self._keys.get(kid)
        if key is None:
            raise UnreadableData(f"no key with id {kid} is configured")
        try:
            return bytes(
                sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                    blob[NONCE_BYTES:], context.encode(), blob[:NONCE_BYTES], key
                )
            )
        except CryptoError:
            raise UnreadableData("sealed value failed authentication") from None

    def seal_text(self, text: str, context: str) -> tuple[str, bytes]:
        return self.seal(text.encode("utf-8"), context)

    def open_text(self, kid: str, blob: bytes, context: str) -> str:
        return self.open(kid, blob, context).decode("utf-8")

    def digest(self, text: str) -> str:
        """A keyed hash for secrets that are only ever compared (verification codes)."""
        return hmac.new(self._digest_key, text.encode(), hashlib.sha256).hexdigest()

    def digest_matches(self, text: str, digest: str) -> bool:
        """Whether ``digest`` is ``text``'s under the current or an older key (a code sent
        before a key rotation still verifies)."""
        for key in (self._digest_key, *self._old_digest_keys):
            mine = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
            if hmac.compare_digest(mine, digest):
                return True
        return False

    def is_current(self, kid: str) -> bool:
        return kid == self.current_id

    def key_ids(self) -> list[str]:
        return list(self._keys)
