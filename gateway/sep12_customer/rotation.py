"""`gateway keys rotate-kyc`: re-seal personal data (customers' fields and files, values sent
with SEP-31 PATCH, SEP-3 requests received and sent) under the current KYC key.

Works in small batches, each its own short transaction, so the gateway keeps serving: new
data is already sealed with the current key, and each re-sealed row is replaced only if it
still carries the old key id (a concurrent update wins)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.personal_data import Vault
from gateway.sep3_auth.sending import data_context, dest_info_context
from gateway.sep3_auth.service import request_context
from gateway.sep12_customer.service import _field_context, _file_context
from gateway.sep31.model import transfer_info_context

COMPLIANCE_CONTEXTS = {
    "request": request_context,
    "sent": data_context,
    "sent_dest_info": dest_info_context,
}

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWorkFactory


@dataclass
class RotationReport:
    resealed: int = 0
    # key id -> values still sealed with a key other than the current one (not configured)
    left: dict[str, int] | None = None


async def rotate_once(uow: UnitOfWorkFactory, vault: Vault, batch: int = 200) -> int:
    """Re-seal up to ``batch`` fields and files sealed with an older key; returns how many."""
    old = [kid for kid in vault.key_ids() if not vault.is_current(kid)]
    if not old:
        return 0
    done = 0
    async with uow() as u:
        for customer_id, name, kid, value in await u.customers.sealed_fields_under(old, batch):
            context = _field_context(customer_id, name)
            new_kid, sealed = vault.seal(vault.open(kid, value, context), context)
            done += await u.customers.replace_sealed_field(customer_id, name, kid, new_kid, sealed)
        for file_id, kid, content in await u.customers.sealed_files_under(old, batch):
            context = _file_context(file_id)
            new_kid, sealed = vault.seal(vault.open(kid, content, context), context)
            done += await u.customers.replace_sealed_file(file_id, kid, new_kid, sealed)
        for transfer_id, kid, blob in await u.transfers.sealed_info_under(old, batch):
            context = transfer_info_context(transfer_id)
            new_kid, sealed = vault.seal(vault.open(kid, blob, context), context)
            done += await u.transfers.replace_sealed_info(transfer_id, kid, new_kid, sealed)
        for kind, row_id, kid, blob in await u.sealed_compliance.under(old, batch):
            context = COMPLIANCE_CONTEXTS[kind](row_id)
            new_kid, sealed = vault.seal(vault.open(kid, blob, context), context)
            done += await u.sealed_compliance.replace(kind, row_id, kid, new_kid, sealed)
        await u.commit()
    return done


async def rotate(uow: UnitOfWorkFactory, vault: Vault, batch: int = 200) -> RotationReport:
    report = RotationReport()
    while (n := await rotate_once(uow, vault, batch)) > 0:
        report.resealed += n
    async with uow(read_only=True) as u:
        counts = await u.customers.sealed_key_ids()
        for kid, n in (await u.transfers.sealed_key_ids()).items():
            counts[kid] = counts.get(kid, 0) + n
        for kid, n in (await u.sealed_compliance.key_ids()).items():
            counts[kid] = counts.get(kid, 0) + n
    report.left = {k: n for k, n in counts.items() if not vault.is_current(k)} or None
    return report
