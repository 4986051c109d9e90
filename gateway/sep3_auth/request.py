"""SEP-3 requests: the form, the ``data`` JSON, the transaction and the attachment, read
strictly and before any network call.

The signature is over the bytes of ``data`` exactly as they arrive after form decoding, and
the memo over the ``attachment`` string exactly as it is inside ``data``: nothing here
re-serializes JSON before hashing or verifying.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from stellar_sdk import Transaction, xdr
from stellar_sdk.memo import HashMemo

from gateway.errors import BadRequest, InvalidField
from gateway.http_input import any_text, unstorable

MAX_FORM_BYTES = 65_536
MAX_TX_BYTES = 16_384


@dataclass(frozen=True)
class AuthRequest:
    data: bytes  # exactly as received; what `sig` signs
    sig: bytes
    sender: str
    sender_domain: str
    need_info: bool
    tx: Transaction
    tx_v1: bytes  # the transaction's XDR in its v1 form: what its hash is computed over
    attachment: str  # exactly as inside data; its SHA-256 is the memo
    memo: bytes
    nonce: str
    sender_info: dict[str, Any] | None
    route: str | None


def parse_form(body: bytes) -> tuple[bytes, bytes]:
    """``data`` and ``sig`` of an urlencoded body, each once; ``sig`` base64-decoded."""
    if len(body) > MAX_FORM_BYTES:
        raise BadRequest(f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body), max_num_fields=8)
    except ValueError:
        raise BadRequest("the body is not an urlencoded form with data and sig") from None
    fields: dict[bytes, bytes] = {}
    for key, value in pairs:
        if key in fields:
            raise InvalidField(key.decode("ascii", "replace")[:16], "sent more than once")
        fields[key] = value
    data, sig = fields.get(b"data"), fields.get(b"sig")
    if not data:
        raise InvalidField("data", "is required")
    if not sig:
        raise InvalidField("sig", "is required")
    try:
        signature = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidField("sig", "is not base64") from None
    if len(signature) != 64:
        raise InvalidField("sig", "is not an Ed25519 signature (64 bytes)")
    return data, signature


def decode_tx(text: str) -> tuple[Transaction, bytes]:
    """A Transaction (v1), a legacy TransactionV0, or an envelope holding one; every byte
    must belong to it. With the transaction's XDR in its v1 form."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidField("tx", "is not base64") from None
    if not raw or len(raw) > MAX_TX_BYTES:
        raise InvalidField("tx", "is empty or too large")
    readers: list[Callable[[], tuple[Transaction, bytes]]] = [
        lambda: (Transaction.from_xdr_object(xdr.Transaction.from_xdr_bytes(raw), v1=True), raw),
        # A v0 transaction is its v1 form without the muxed-account arm (ed25519, 0).
        lambda: (
            Transaction.from_xdr_object(xdr.TransactionV0.from_xdr_bytes(raw), v1=False),
            b"\x00\x00\x00\x00" + raw,
        ),
        lambda: _from_envelope(xdr.TransactionEnvelope.from_xdr_bytes(raw)),
    ]
    if raw[:4] in (b"\x00\x00\x00\x00", b"\x00\x00\x01\x00"):
        # A v1 account arm: these bytes are no v0 transaction (whose first bytes are a key),
        # however they might line up when read as one.
        del readers[1]
    for read in readers:
        try:
            return read()
        except Exception:  # noqa: S112 - XDR readers fail in many ways; try the next
            continue
    raise InvalidField("tx", "is not a Stellar transaction in XDR")


def _from_envelope(envelope: xdr.TransactionEnvelope) -> tuple[Transaction, bytes]:
    if envelope.v1 is not None:
        return Transaction.from_xdr_object(envelope.v1.tx, v1=True), envelope.v1.tx.to_xdr_bytes()
    if envelope.v0 is not None:
        v0 = envelope.v0.tx.to_xdr_bytes()
        return Transaction.from_xdr_object(envelope.v0.tx, v1=False), b"\x00\x00\x00\x00" + v0
    raise ValueError("not a plain transaction")


def parse_request(data: bytes, sig: bytes) -> AuthRequest:
    try:
        text = data.decode("utf-8")
        body = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidField("data", "is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidField("data", "must be a JSON object")
    if any_text(body, unstorable):
        raise InvalidField("data", "must not hold NUL characters or unpaired surrogates")
    sender = body.get("sender")
    if not isinstance(sender, str) or sender.count("*") != 1:
        raise InvalidField("sender", "must be a federation address name*domain")
    name, domain = sender.split("*")
    if not name or not domain or len(sender) > 256:
        raise InvalidField("sender", "must be a federation address name*domain")
    need_info = body.get("need_info", False)
    if not isinstance(need_info, bool):
        raise InvalidField("need_info", "must be true or false")
    tx_text, attachment = body.get("tx"), body.get("attachment")
    if not isinstance(tx_text, str) or not tx_text:
        raise InvalidField("tx", "is required")
    if not isinstance(attachment, str):
        raise InvalidField("attachment", "must be the attachment's JSON text")
    tx, tx_v1 = decode_tx(tx_text)
    digest = hashlib.sha256(attachment.encode("utf-8")).digest()
    if not isinstance(tx.memo, HashMemo):
        raise InvalidField("tx", "memo must be a hash memo of the attachment")
    if tx.memo.memo_hash != digest:
        raise InvalidField("tx", "memo is not the SHA-256 of the attachment")
    parsed = _attachment(attachment)
    found = parsed.get("transaction")
    transaction: dict[str, Any] = found if isinstance(found, dict) else {}
    sender_info = transaction.get("sender_info")
    route = transaction.get("route")
    nonce = parsed.get("nonce")
    return AuthRequest(
        data=data,
        sig=sig,
        sender=sender,
        sender_domain=domain.lower(),
        need_info=need_info,
        tx=tx,
        tx_v1=tx_v1,
        attachment=attachment,
        memo=digest,
        nonce=nonce if isinstance(nonce, str) else "",
        sender_info=sender_info if isinstance(sender_info, dict) else None,
        route=route if isinstance(route, str) and route else None,
    )


def _attachment(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidField("attachment", "is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidField("attachment", "must be a JSON object")
    if any_text(parsed, unstorable):
        raise InvalidField("attachment", "must not hold NUL characters or unpaired surrogates")
    return parsed
