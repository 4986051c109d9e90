"""SEP-3 rows as the AUTH_SERVER stores them, for tests of what reads them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from stellar_sdk import Keypair


def compliance_row(**changes: Any) -> dict[str, Any]:
    """A stored compliance request (pending review, 20 USD by default); ``changes`` win."""
    now = datetime.now(UTC)
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "sender_domain": "bank.test",
        "nonce": "n-1",
        "data_digest": "d" * 64,
        "sender": "alice*bank.test",
        "fi_key": Keypair.random().public_key,
        "memo": "ab" * 32,
        "tx_hash": "cd" * 32,
        "customer_id": None,
        "destination": Keypair.random().public_key,
        "asset_code": "USD",
        "asset_issuer": Keypair.random().public_key,
        "amount": 200_000_000,
        "need_info": False,
        "tx_status": "pending",
        "info_status": "ok",
        "reason": None,
        "public_reason": None,
        "decided_by": None,
        "data_key_id": "k",
        "data_sealed": b"sealed",
        "created_at": now,
        "updated_at": now,
    }
    row.update(changes)
    return row
