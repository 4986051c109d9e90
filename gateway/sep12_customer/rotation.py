"""`gateway keys rotate-kyc`: re-seal personal data (customers' fields and files, values sent
with SEP-31 PATCH, SEP-3 requests received and sent) and webhook signing secrets under the
current KYC key.

Works in small batches, each its own short transaction, so the gateway keeps serving: new
data is already sealed with the current key, and each re-sealed row is replaced only if it
still carries the old key id (a concurrent update wins)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.ops.webhooks import secret_context as webhook_secret_context
from gateway.personal_data import Vault
from gateway.sep3_auth.sending import data_context, dest_info_context
from gateway.sep3_auth.service import request_context
from gateway.sep12_customer.service import _field_context, _file_context
from gateway.sep31.model import transfer_info_context

# The context each kind of value (gateway.db.sealed_repository.SEALED) is sealed under.
CONTEXTS: dict[str, Callable[..., str]] = {
    "field": _field_context,
    "file": _file_context,
    "transfer_info": transfer_info_context,
    "compliance_request": request_context,
    "compliance_sent": data_context,
    "compliance_sent_dest_info": dest_info_context,
    "webhook_secret": webhook_secret_context,
}

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWorkFactory


@dataclass
class RotationReport:
    resealed: int = 0
    # key id -> values still sealed with a key other than the current one (not configured)
    left: dict[str, int] | None = None


async def rotate_once(uow: UnitOfWorkFactory, vault: Vault, batch: int = 200) -> int:
    """Re-seal up to ``batch`` values of each kind sealed with an older key; how many."""
    old = [kid for kid in vault.key_ids() if not vault.is_current(kid)]
    if not old:
        return 0
    done = 0
    async with uow() as u:
        for kind, keys, kid, blob in await u.sealed.under(old, batch):
            context = CONTEXTS[kind](*keys)
            new_kid, sealed = vault.seal(vault.open(kid, blob, context), context)
            done += await u.sealed.replace(kind, keys, kid, new_kid, sealed)
        await u.commit()
    return done


async def rotate(uow: UnitOfWorkFactory, vault: Vault, batch: int = 200) -> RotationReport:
    report = RotationReport()
    while (n := await rotate_once(uow, vault, batch)) > 0:
        report.resealed += n
    async with uow(read_only=True) as u:
        counts = await u.sealed.key_ids()
    report.left = {k: n for k, n in counts.items() if not vault.is_current(k)} or None
    return report
