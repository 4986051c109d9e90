"""SEP-12 use cases: customers keyed by their SEP-10 identity, their sealed SEP-9 data, status
per (customer, type), verification codes, files, deletion, callbacks and KYC reviews.

Every change of a customer runs in one unit of work that also records the status changes it
causes and queues the callbacks and provider reviews they trigger (the outbox), so none is
lost or sent for a change that was rolled back.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from gateway.db.customer_repository import (
    CallbackRow,
    CustomerRow,
    FieldRow,
    FileRow,
    TypeStatusRow,
)
from gateway.errors import (
    BadRequest,
    Forbidden,
    InvalidField,
    NotFound,
    PayloadTooLarge,
    RateLimited,
)
from gateway.http_input import Upload
from gateway.outbound.callbacks import check_callback_url
from gateway.outbound.kyc_provider import KycProvider, ReviewDecision, ReviewRequest
from gateway.outbound.notifier import Channel, Notifier
from gateway.personal_data import UnreadableData, Vault
from gateway.sep9 import BINARY_FIELDS, CATALOG, FieldError, normalize, sniff_file
from gateway.sep10 import AuthSession
from gateway.sep12_customer.model import (
    FINAL,
    Decision,
    Evaluation,
    FieldStatus,
    Provided,
    Status,
    document,
    evaluate,
)
from gateway.settings import CustomerTypeSettings, Settings
from gateway.types import normalize_memo

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("gateway.sep12")

CONTROL_PARAMS = frozenset({"id", "account", "memo", "memo_type", "type", "transaction_id", "lang"})
CALLBACK_KIND = "sep12_callback"
CODES_PER_HOUR = 5  # verification codes sent per field and customer
REVIEW_KIND = "kyc_review"
CUSTOMER_NOT_FOUND = "customer with `id` not found"


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose customer record a request addresses: an account and, for shared accounts, a
    memo (``memo_type`` "none" with an empty memo when there is none)."""

    account: str
    memo_type: str
    memo: str


class TransactionDirectory(Protocol):
    """Who owns a transaction (SEP-31 answers it); GET /customer?transaction_id= uses it."""

    async def owner_of(self, transaction_id: str) -> str | None:
        """The SEP-10 account that created the transaction, or None if it does not exist."""


class NoTransactions:
    async def owner_of(self, transaction_id: str) -> str | None:
        return None


@dataclass
class _Change:
    """What one PUT changes, gathered before anything is written."""

    texts: dict[str, str] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    file_refs: dict[str, str] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)


def _now() -> datetime:
    return datetime.now(UTC)


class CustomerService:
    def __init__(
        self,
        settings: Settings,
        *,
        uow: UnitOfWorkFactory,
        vault: Vault,
        notifier: Notifier,
        transactions: TransactionDirectory | None = None,
        clock: Callable[[], datetime] = _now,
    ):
        self._s = settings.sep12
        self._validation = settings.kyc.validation
        self._types = {t.name: t for t in settings.sep12.types}
        self._verify = {f for t in settings.sep12.types for f in t.verify}
        self._uow = uow
        self._vault = vault
        self._notifier = notifier
        self._transactions = transactions or NoTransactions()
        self._clock = clock
        self._insecure_hosts = (
            frozenset(settings.outbound.insecure_callback_hosts)
            if not settings.is_mainnet
            else frozenset()
        )

    # -- identity ----------------------------------------------------------------------------

    def owner(
        self,
        session: AuthSession,
        account: object = None,
        memo: object = None,
        memo_type: object = None,
    ) -> Owner:
        """The record a request may address, per SEP-12's shared-account rules."""
        if account not in (None, "") and account not in (session.account, session.client.muxed):
            raise Forbidden("account: does not match the authenticated account")
        if session.memo is not None:
            # SEP-12: memo_type is ignored when the token carries the memo.
            if memo not in (None, "") and _memo_id_or_none(memo) != session.memo:
                raise Forbidden("memo: does not match the memo of the authenticated session")
            return Owner(session.account, "id", session.memo)
        if memo in (None, ""):
            return Owner(session.account, "none", "")
        kind = "id" if memo_type in (None, "") else memo_type
        return Owner(session.account, str(kind), normalize_memo(memo, kind))

    @staticmethod
    def may_see(session: AuthSession, customer: CustomerRow) -> bool:
        """A memo-less session speaks for every sub-account of its account; a session with a
        memo only for that memo's customer."""
        if customer.account != session.account:
            return False
        return session.memo is None or (
            customer.memo_type == "id" and customer.memo == session.memo
        )

    async def _customer(
        self,
        uow: UnitOfWork,
        session: AuthSession,
        params: Mapping[str, Any],
        *,
        lock: bool = False,
    ) -> CustomerRow | None:
        """The customer a request addresses (by id, else by its owner); ``lock`` holds its
        row until the transaction ends, so changes of one customer happen one at a time."""
        customer_id = params.get("id")
        if customer_id not in (None, ""):
            self.owner(session, params.get("account"))  # a stray account is still refused
            customer = await uow.customers.get(str(customer_id), lock=lock)
            if customer is None or not self.may_see(session, customer):
                raise NotFound(CUSTOMER_NOT_FOUND)
            return customer
        o = self.owner(session, params.get("account"), params.get("memo"), params.get("memo_type"))
        return await uow.customers.find(o.account, o.memo_type, o.memo, lock=lock)

    def _type(self, name: object) -> CustomerTypeSettings:
        if name in (None, ""):
            name = self._s.default_type
        spec = self._types.get(str(name))
        if spec is None:
            raise InvalidField(
                "type",
                "is not a customer type of this server; use one of " + ", ".join(self._types),
            )
        return spec

    # -- GET /customer -----------------------------------------------------------------------

    async def get(self, session: AuthSession, params: Mapping[str, Any]) -> dict[str, Any]:
        spec = self._type(params.get("type"))
        transaction_id = params.get("transaction_id")
        if transaction_id not in (None, ""):
            if params.get("type") in (None, ""):
                raise InvalidField("type", "is required with transaction_id")
            if await self._transactions.owner_of(str(transaction_id)) != session.account:
                raise NotFound("transaction not found")
        customer_id = params.get("id")
        # One query: the customer, its stored status for the type and its fields' states.
        async with self._uow(read_only=True) as uow:
            if customer_id not in (None, ""):
                self.owner(session, params.get("account"))  # a stray account is refused
                cid = str(customer_id)
                found = (await uow.customers.for_check([cid], [spec.name])).get(cid)
                if found is None or not self.may_see(session, found.customer):
                    raise NotFound(CUSTOMER_NOT_FOUND)
            else:
                o = self.owner(
                    session, params.get("account"), params.get("memo"), params.get("memo_type")
                )
                found = await uow.customers.for_check_identity(
                    (o.account, o.memo_type, o.memo), [spec.name]
                )
                if found is None:
                    return document(None, spec, Evaluation(Status.NEEDS_INFO, (), None, False), {})
        provided = {n: Provided(*state) for n, state in found.fields.items()}
        stored = found.statuses.get(spec.name)
        ev = self._evaluate(spec, provided, stored, found.customer.version)
        return document(found.customer.id, spec, ev, provided)

    async def _state(
        self, uow: UnitOfWork, customer_id: str
    ) -> tuple[dict[str, Provided], dict[str, TypeStatusRow]]:
        rows = await uow.customers.fields(customer_id)
        provided = {n: Provided(r.status, r.error) for n, r in rows.items()}
        return provided, await uow.customers.type_statuses(customer_id)

    def _evaluate(
        self,
        spec: CustomerTypeSettings,
        provided: Mapping[str, Provided],
        stored: TypeStatusRow | None,
        version: int,
    ) -> Evaluation:
        decision = None
        if stored is not None and stored.decision is not None:
            decision = Decision(stored.decision, stored.decision_version or 0, stored.message)
        ev = evaluate(spec, provided, decision, version, self._validation)
        if ev.review_due and self._validation == "auto":
            # Testnet guidance: complete, well-formed data is accepted with no third party.
            return Evaluation(Status.ACCEPTED, (), None, False)
        return ev

    async def status_for(
        self,
        session: AuthSession,
        customer_id: str,
        type_name: str,
        *,
        same_account: bool = False,
    ) -> Status | None:
        """The customer's status for a type, or None when it is not the caller's. With
        ``same_account`` any memo of the caller's account counts (SEP-31: customers are the
        sending anchor's, whichever of its memos registered them)."""
        [status] = await self.statuses_for(
            session, [(customer_id, type_name)], same_account=same_account
        )
        return status

    async def current_status(
        self, customer_id: str, type_name: str
    ) -> tuple[Status, datetime] | None:
        """The customer's status for a type and when their data last changed (for SEP-31
        transfers waiting on them; no caller identity: internal use only)."""
        spec = self._type(type_name)
        async with self._uow(read_only=True) as uow:
            found = (await uow.customers.for_check([customer_id], [spec.name])).get(customer_id)
            if found is None:
                return None
            changed_at = await uow.customers.data_changed_at(customer_id)
        assert changed_at is not None
        provided = {n: Provided(*state) for n, state in found.fields.items()}
        stored = found.statuses.get(spec.name)
        return self._evaluate(spec, provided, stored, found.customer.version).status, changed_at

    async def statuses_for(
        self,
        session: AuthSession,
        wanted: list[tuple[str, str]],
        *,
        same_account: bool = False,
        uow: UnitOfWork | None = None,
    ) -> list[Status | None]:
        """``status_for`` of several (customer id, type) pairs in one query. In the caller's
        unit of work when given one (a check and the write it guards in one transaction),
        else in a read of its own."""
        if not wanted:
            return []
        specs = [self._type(type_name) for _, type_name in wanted]
        ids = list(dict.fromkeys(customer_id for customer_id, _ in wanted))
        if uow is None:
            async with self._uow(read_only=True) as own:
                return await self.statuses_for(session, wanted, same_account=same_account, uow=own)
        found = await uow.customers.for_check(ids, [s.name for s in specs])
        out: list[Status | None] = []
        for (customer_id, _), spec in zip(wanted, specs, strict=True):
            checked = found.get(customer_id)
            if checked is None or not (
                checked.customer.account == session.account
                and (same_account or self.may_see(session, checked.customer))
            ):
                out.append(None)
                continue
            provided = {n: Provided(*state) for n, state in checked.fields.items()}
            stored = checked.statuses.get(spec.name)
            out.append(self._evaluate(spec, provided, stored, checked.customer.version).status)
        return out

    async def put(
        self, session: AuthSession, fields: Mapping[str, Any], uploads: Mapping[str, Upload]
    ) -> str:
        """Create or update the caller's customer; returns its id (202 in SEP-12)."""
        if fields.get("type") not in (None, ""):
            self._type(fields["type"])
        change = self._parse(fields, uploads)
        async with self._uow() as uow:
            now = self._clock()
            customer: CustomerRow | None = None
            if fields.get("id") in (None, "") and not change.codes:
                # The common case, a new customer, costs one INSERT and no look-ups.
                o = self.owner(
                    session, fields.get("account"), fields.get("memo"), fields.get("memo_type")
                )
                customer_id = str(uuid.uuid4())
                if await uow.customers.create(customer_id, o.account, o.memo_type, o.memo, now):
                    customer = CustomerRow(customer_id, o.account, o.memo_type, o.memo, 1)
                    sent_codes = await self._apply(uow, session, customer, change, now, new=True)
            if customer is None:
                customer = await self._customer(uow, session, fields, lock=True)
                if customer is None:  # codes for a customer that does not exist
                    raise NotFound(CUSTOMER_NOT_FOUND)
                if change.codes:
                    # Checked under the customer's lock, against what is stored now.
                    wrong = await self._check_codes(uow, customer, change.codes, now)
                    if wrong:
                        await uow.commit()  # keeps the counted attempts; nothing else changes
                        raise BadRequest("; ".join(wrong))
                sent_codes = await self._apply(uow, session, customer, change, now, new=False)
            await uow.commit()
        for field_name, (channel, destination, code) in sent_codes.items():
            try:
                await self._notifier.send_code(channel, destination, code, customer.id)
            except Exception as exc:
                # The type only: a provider's message may contain the destination.
                log.warning(
                    "could not send the %s code for customer %s: %s",
                    field_name,
                    customer.id,
                    type(exc).__name__,
                )
        return customer.id

    def _parse(self, fields: Mapping[str, Any], uploads: Mapping[str, Upload]) -> _Change:
        change = _Change()
        problems: list[str] = []
        unknown: list[str] = []
        phone_format = fields.get("mobile_number_format")
        for name, value in fields.items():
            if name in CONTROL_PARAMS:
                continue
            if name.endswith("_verification"):
                target = name.removesuffix("_verification")
                if target not in self._verify:
                    unknown.append(name)
                elif not isinstance(value, str | int) or not str(value).strip():
                    problems.append(f"{name}: must be the code that was sent")
                else:
                    change.codes[target] = str(value).strip()
                continue
            if name.endswith("_file_id"):
                target = name.removesuffix("_file_id")
                if target not in BINARY_FIELDS:
                    unknown.append(name)
                elif not isinstance(value, str) or not value:
                    problems.append(f"{name}: must be the file_id of an uploaded file")
                else:
                    change.file_refs[target] = value
                continue
            spec = CATALOG.get(name)
            if spec is None:
                unknown.append(name)
            elif spec.kind == "binary":
                problems.append(
                    f"{name}: send it as a file (multipart/form-data) or as {name}_file_id"
                )
            else:
                try:
                    change.texts[name] = normalize(
                        name, value, phone_format=str(phone_format) if phone_format else None
                    )
                except FieldError as exc:
                    problems.append(str(exc))
        for name, upload in uploads.items():
            if name not in BINARY_FIELDS:
                unknown.append(name)
                continue
            problems.extend(self._check_upload(name, upload))
            change.uploads[name] = upload
        if unknown:
            names = sorted(unknown)
            shown = ", ".join(n[:64] for n in names[:10])
            more = f" and {len(names) - 10} more" if len(names) > 10 else ""
            raise BadRequest(f"not SEP-9 fields this server collects: {shown}{more}")
        if problems:
            raise BadRequest("; ".join(problems))
        return change

    def _check_upload(self, name: str, upload: Upload) -> list[str]:
        if len(upload.content) > self._s.max_file_bytes:
            raise PayloadTooLarge(f"{name}: files may be at most {self._s.max_file_bytes} bytes")
        if not upload.content:
            return [f"{name}: the file is empty"]
        detected = sniff_file(upload.content)
        if detected is None:
            return [f"{name}: must be a JPEG, PNG or PDF file"]
        declared = (upload.content_type or "").split(";")[0].strip().lower()
        if declared not in ("", "application/octet-stream", detected) and not (
            declared == "image/jpg" and detected == "image/jpeg"
        ):
            return [f"{name}: content is {detected}, not the declared {declared}"]
        return []

    async def _apply(
        self,
        uow: UnitOfWork,
        session: AuthSession,
        customer: CustomerRow,
        change: _Change,
        now: datetime,
        *,
        new: bool,
    ) -> dict[str, tuple[Channel, str, str]]:
        """Write the change; returns the verification codes to send once committed.
        A ``new`` customer (created at version 1) has no fields, statuses or callback yet."""
        existing = (
            {}
            if new
            else await uow.customers.fields(
                customer.id, with_values=bool(change.texts or change.codes)
            )
        )
        fresh_status = (
            FieldStatus.PROCESSING if self._validation == "provider" else FieldStatus.ACCEPTED
        )
        rows: list[FieldRow] = []
        codes: dict[str, tuple[Channel, str, str]] = {}
        for name, value in change.texts.items():
            old = existing.get(name)
            if old is not None and self._same(customer.id, name, old, value):
                continue
            kid, sealed = self._vault.seal_text(value, _field_context(customer.id, name))
            status = fresh_status
            if name in self._verify:
                status = FieldStatus.VERIFICATION_REQUIRED
                code = f"{secrets.randbelow(1_000_000):06d}"
                if not await uow.customers.set_verification(
                    customer.id,
                    name,
                    self._code_digest(customer.id, name, code),
                    now + timedelta(seconds=self._s.verification_code_seconds),
                    now,
                    per_hour=CODES_PER_HOUR,
                ):
                    raise RateLimited(600, f"{name}: too many codes were sent; try again later")
                codes[name] = ("sms" if name == "mobile_number" else "email", value, code)
            rows.append(FieldRow(name, status, None, kid, sealed, None))
        for name, upload in change.uploads.items():
            file_id = await self._store_file(uow, customer, upload, now)
            rows.append(FieldRow(name, fresh_status, None, None, None, file_id))
        referenced = {n: r.file_id for n, r in existing.items() if r.file_id}
        for name, file_id in change.file_refs.items():
            if referenced.get(name) == file_id:
                continue  # the same file again: nothing changes
            if file_id in {f for n, f in referenced.items() if n != name}:
                raise InvalidField(f"{name}_file_id", "that file is already another field's")
            referenced[name] = file_id
            await self._attach(uow, session, customer, file_id, name, now)
            rows.append(FieldRow(name, fresh_status, None, None, None, file_id))
        for name in change.codes:  # checked before the transaction began
            if name not in change.texts and name in existing:
                rows.append(self._verified(existing, name, fresh_status))
                await uow.customers.clear_verification(customer.id, name)
        for row in rows:
            old = existing.get(row.name)
            if old is not None and old.file_id and old.file_id != row.file_id:
                await uow.customers.delete_file(old.file_id)
        if rows:
            await uow.customers.put_fields(customer.id, rows, set(existing), now)
            if not new:
                version = await uow.customers.bump_version(customer.id, now)
                customer = CustomerRow(
                    customer.id, customer.account, customer.memo_type, customer.memo, version
                )
        provided = {n: Provided(r.status, r.error) for n, r in existing.items()}
        provided.update({r.name: Provided(r.status, r.error) for r in rows})
        if new:
            stored: dict[str, TypeStatusRow] = {}
            callback = None
        else:
            stored = await uow.customers.type_statuses(customer.id)
            callback = await uow.customers.callback(customer.id)
        await self._refresh(
            uow,
            customer,
            provided,
            stored,
            callback,
            actor=session.sub,
            reason="customer data",
            now=now,
        )
        return codes

    def _same(self, customer_id: str, name: str, old: FieldRow, value: str) -> bool:
        """Whether ``value`` is what is stored already (then nothing is written). A field
        that was rejected, or still awaits its code, counts as changed: sending it again is
        how a customer resubmits it or asks for a new code."""
        if (
            old.value is None
            or old.key_id is None
            or old.status
            in (
                FieldStatus.REJECTED,
                FieldStatus.VERIFICATION_REQUIRED,
            )
        ):
            return False
        try:
            stored = self._vault.open_text(old.key_id, old.value, _field_context(customer_id, name))
        except UnreadableData:
            return False
        return stored == value

    @staticmethod
    def _verified(existing: Mapping[str, FieldRow], name: str, status: str) -> FieldRow:
        old = existing[name]
        return FieldRow(name, status, None, old.key_id, old.value, old.file_id)

    def _code_digest(self, customer_id: str, name: str, code: str) -> str:
        return self._vault.digest(f"verification:{customer_id}:{name}:{code}")

    async def _check_codes(
        self, uow: UnitOfWork, customer: CustomerRow, codes: Mapping[str, str], now: datetime
    ) -> list[str]:
        """Problems with the codes (none: all right). A wrong code is counted."""
        wrong = []
        for name, code in codes.items():
            pending = await uow.customers.verification(customer.id, name)
            if pending is None or pending.expires_at < now:
                wrong.append(
                    f"{name}_verification: no code is pending or it expired; "
                    f"send {name} again for a new one"
                )
            elif pending.attempts >= self._s.verification_max_attempts:
                wrong.append(
                    f"{name}_verification: too many wrong codes; send {name} again for a new one"
                )
            elif not self._vault.digest_matches(
                f"verification:{customer.id}:{name}:{code}", pending.code_digest
            ):
                await uow.customers.count_verification_attempt(customer.id, name)
                wrong.append(f"{name}_verification: the code is wrong")
        return wrong

    async def _store_file(
        self,
        uow: UnitOfWork,
        customer: CustomerRow | None,
        upload: Upload,
        now: datetime,
        owner: Owner | None = None,
    ) -> str:
        file_id = str(uuid.uuid4())
        kid, sealed = self._vault.seal(upload.content, _file_context(file_id))
        detected = sniff_file(upload.content) or "application/octet-stream"
        base = owner or Owner(customer.account, customer.memo_type, customer.memo)  # type: ignore[union-attr]
        await uow.customers.add_file(
            FileRow(
                id=file_id,
                account=base.account,
                memo_type=base.memo_type,
                memo=base.memo,
                customer_id=customer.id if customer else None,
                content_type=detected,
                size=len(upload.content),
                key_id=kid,
                content=sealed,
                created_at=now,
                expires_at=None
                if customer
                else now + timedelta(seconds=self._s.unattached_file_seconds),
            )
        )
        return file_id

    async def _attach(
        self,
        uow: UnitOfWork,
        session: AuthSession,
        customer: CustomerRow,
        file_id: str,
        name: str,
        now: datetime,
    ) -> None:
        f = await uow.customers.file(file_id)
        ok = (
            f is not None
            and f.account == session.account
            and (f.customer_id in (None, customer.id))
            and (f.expires_at is None or f.expires_at > now)
            and (
                f.memo_type == "none"
                or (f.memo_type, f.memo) == (customer.memo_type, customer.memo)
            )
        )
        if not ok:
            raise InvalidField(f"{name}_file_id", "no such file of yours")
        await uow.customers.attach_file(file_id, customer.id)

    async def upload_file(self, session: AuthSession, upload: Upload | None) -> dict[str, Any]:
        if upload is None:
            raise InvalidField("file", "is required (one multipart part named 'file')")
        problems = self._check_upload("file", upload)
        if problems:
            raise BadRequest(problems[0])
        owner = self.owner(session)
        async with self._uow() as uow:
            now = self._clock()
            file_id = await self._store_file(uow, None, upload, now, owner=owner)
            await uow.commit()
            expires = now + timedelta(seconds=self._s.unattached_file_seconds)
        return {
            "file_id": file_id,
            "content_type": sniff_file(upload.content),
            "size": len(upload.content),
            "expires_at": _iso(expires),
            "customer_id": None,
        }

    async def list_files(self, session: AuthSession, params: Mapping[str, Any]) -> dict[str, Any]:
        file_id, customer_id = params.get("file_id"), params.get("customer_id")
        if bool(file_id) == bool(customer_id):
            raise BadRequest("send exactly one of file_id and customer_id")
        async with self._uow(read_only=True) as uow:
            if file_id:
                f = await uow.customers.file(str(file_id))
                visible = [f] if f is not None and self._file_visible(session, f) else []
            else:
                customer = await uow.customers.get(str(customer_id))
                visible = (
                    await uow.customers.files_of(customer.id)
                    if customer is not None and self.may_see(session, customer)
                    else []
                )
        return {"files": [_file_doc(f) for f in visible]}

    @staticmethod
    def _file_visible(session: AuthSession, f: FileRow) -> bool:
        if f.account != session.account:
            return False
        return session.memo is None or (f.memo_type, f.memo) == ("id", session.memo)

    # -- verification (deprecated endpoint) --------------------------------------------------

    async def verify(self, session: AuthSession, params: Mapping[str, Any]) -> dict[str, Any]:
        codes = {k: v for k, v in params.items() if k.endswith("_verification")}
        if not codes:
            raise BadRequest("send one or more <field>_verification codes")
        if params.get("id") in (None, ""):
            raise InvalidField("id", "is required")
        await self.put(session, {"id": params["id"], **codes}, {})
        return await self.get(session, {"id": params["id"], "type": params.get("type")})

    # -- DELETE /customer/{account} ----------------------------------------------------------

    async def delete(self, session: AuthSession, account: str, params: Mapping[str, Any]) -> None:
        """Erase the customer's personal data (rows, not flags) and record the deletion."""
        if account not in (session.account, session.client.muxed):
            raise Forbidden("account: does not match the authenticated account")
        o = self.owner(session, None, params.get("memo"), params.get("memo_type"))
        async with self._uow() as uow:
            customer = await uow.customers.find(o.account, o.memo_type, o.memo)
            if customer is None:
                raise NotFound("no customer is stored for this account")
            now = self._clock()
            await uow.customers.delete(customer.id)
            await uow.outbox.drop_pending(customer.id)
            await uow.customers.delete_unattached_files(o.account, o.memo_type, o.memo)
            await uow.customers.record_events(
                [
                    {
                        "customer_id": customer.id,
                        "type": None,
                        "from_status": None,
                        "to_status": "DELETED",
                        "actor": session.sub,
                        "reason": "DELETE /customer",
                        "at": now,
                    }
                ]
            )
            await uow.commit()

    # -- PUT /customer/callback --------------------------------------------------------------

    async def set_callback(self, session: AuthSession, params: Mapping[str, Any]) -> None:
        url = check_callback_url(params.get("url"), self._insecure_hosts)
        spec = self._type(params.get("type"))
        async with self._uow() as uow:
            customer = await self._customer(uow, session, params)
            if customer is None:
                raise NotFound(CUSTOMER_NOT_FOUND)
            await uow.customers.set_callback(customer.id, url, spec.name, self._clock())
            await uow.outbox.retarget(customer.id, CALLBACK_KIND, url)
            await uow.commit()

    # -- decisions ---------------------------------------------------------------------------

    async def decide(
        self,
        customer_id: str,
        type_name: str,
        status: str,
        reason: str | None,
        actor: str,
        rejected_fields: Mapping[str, str] | None = None,
        *,
        version: int | None = None,
    ) -> Status:
        """A reviewer's decision (operator or KYC provider) on the customer's data: the
        current data, or only ``version`` of it (a provider's answer about data that has
        changed since is ignored: the newer data has its own review)."""
        spec = self._type(type_name)
        if status not in ("ACCEPTED", "REJECTED", "NEEDS_INFO"):
            raise InvalidField("status", "must be ACCEPTED, REJECTED or NEEDS_INFO")
        if status == "REJECTED" and not reason:
            raise InvalidField("reason", "is required to reject a customer")
        if reason is not None and len(reason) > 512:
            raise InvalidField("reason", "must be at most 512 characters")
        for why in (rejected_fields or {}).values():
            if not why or len(why) > 256:
                raise InvalidField("rejected_fields", "each reason is 1 to 256 characters")
        async with self._uow() as uow:
            customer = await uow.customers.get(customer_id, lock=True)
            if customer is None:
                raise NotFound("customer not found")
            now = self._clock()
            statuses = await uow.customers.type_statuses(customer.id)
            if version is not None and version != customer.version:
                fields, _ = await self._state(uow, customer.id)
                return self._evaluate(
                    spec, fields, statuses.get(spec.name), customer.version
                ).status
            stored = statuses.get(spec.name)
            decision: str | None = None
            if status == "NEEDS_INFO":
                unknown = set(rejected_fields or {}) - set(spec.required) - set(spec.optional)
                if not rejected_fields or unknown:
                    raise InvalidField("rejected_fields", f"must name fields of {spec.name}")
                for name, why in rejected_fields.items():
                    await uow.customers.set_field_status(
                        customer.id, [name], FieldStatus.REJECTED, why, now
                    )
            else:
                decision = status
                if status == "ACCEPTED":
                    # Fields still waiting for their code stay so: acceptance is not proof.
                    await uow.customers.set_field_status(
                        customer.id,
                        [*spec.required, *spec.optional],
                        FieldStatus.ACCEPTED,
                        None,
                        now,
                        unless=FieldStatus.VERIFICATION_REQUIRED,
                    )
            row = TypeStatusRow(
                spec.name,
                stored.status if stored else Status.NEEDS_INFO,
                decision,
                customer.version if decision else None,
                reason if decision == "REJECTED" else None,
                stored.review_version if stored else None,
            )
            await uow.customers.save_type_statuses(
                customer.id, [row], {spec.name} if stored else set(), now
            )
            provided, stored_all = await self._state(uow, customer.id)
            result = await self._refresh(
                uow,
                customer,
                provided,
                stored_all,
                await uow.customers.callback(customer.id),
                actor=actor,
                reason=reason,
                now=now,
            )
            await uow.commit()
        return result.get(spec.name, Status.NEEDS_INFO)

    async def review(self, provider: KycProvider, body: bytes) -> bool:
        """Run one queued provider review. False: the provider is still processing it."""
        job = json.loads(body)
        customer_id, type_name, version = job["customer_id"], job["type"], job["version"]
        async with self._uow(read_only=True) as uow:
            customer = await uow.customers.get(customer_id)
            if customer is None or customer.version != version:
                return True  # erased, or newer data has its own review queued
            rows = await uow.customers.fields(customer.id, with_values=True)
            spec = self._type(type_name)
            wanted = set(spec.required) | set(spec.optional)
            texts: dict[str, str] = {}
            files: list[tuple[str, str, bytes]] = []
            for name, row in rows.items():
                if name not in wanted:
                    continue
                if row.file_id:
                    f = await uow.customers.file(row.file_id, with_content=True)
                    if f is not None and f.content is not None:
                        files.append(
                            (
                                name,
                                f.content_type,
                                self._vault.open(f.key_id, f.content, _file_context(f.id)),
                            )
                        )
                elif row.value is not None and row.key_id is not None:
                    texts[name] = self._vault.open_text(
                        row.key_id, row.value, _field_context(customer.id, name)
                    )
        decision: ReviewDecision = await provider.review(
            ReviewRequest(
                f"{customer_id}:{type_name}:{version}", customer_id, type_name, texts, tuple(files)
            )
        )
        if decision.status == "PROCESSING":
            return False
        await self.decide(
            customer_id,
            type_name,
            decision.status,
            decision.message,
            actor="kyc-provider",
            rejected_fields=decision.rejected_fields,
            version=version,
        )
        return True

    # -- status bookkeeping ------------------------------------------------------------------

    async def _refresh(
        self,
        uow: UnitOfWork,
        customer: CustomerRow,
        provided: Mapping[str, Provided],
        stored: Mapping[str, TypeStatusRow],
        callback: CallbackRow | None,
        *,
        actor: str,
        reason: str | None,
        now: datetime,
    ) -> dict[str, Status]:
        """Re-evaluate every type against the customer's current ``provided`` fields and
        ``stored`` statuses; store changed statuses, record them, and queue the callbacks and
        reviews they call for."""
        changed: list[TypeStatusRow] = []
        events: list[dict[str, object]] = []
        result: dict[str, Status] = {}
        for spec in self._types.values():
            old = stored.get(spec.name)
            ev = self._evaluate(spec, provided, old, customer.version)
            result[spec.name] = ev.status
            review_version = old.review_version if old else None
            if (
                ev.review_due
                and self._validation == "provider"
                and review_version != customer.version
            ):
                review_version = customer.version
                body = json.dumps(
                    {"customer_id": customer.id, "type": spec.name, "version": customer.version}
                ).encode()
                await uow.outbox.add(
                    str(uuid.uuid4()), REVIEW_KIND, "kyc-provider", body, customer.id, now
                )
            if old is not None and old.status == ev.status and old.review_version == review_version:
                continue
            changed.append(
                TypeStatusRow(
                    spec.name,
                    ev.status,
                    old.decision if old else None,
                    old.decision_version if old else None,
                    old.message if old else None,
                    review_version,
                )
            )
            if old is None or old.status != ev.status:
                events.append(
                    {
                        "customer_id": customer.id,
                        "type": spec.name,
                        "from_status": old.status if old else None,
                        "to_status": str(ev.status),
                        "actor": actor,
                        "reason": reason,
                        "at": now,
                    }
                )
                if callback is not None and callback.type == spec.name:
                    body = json.dumps(
                        document(customer.id, spec, ev, provided), separators=(",", ":")
                    ).encode()
                    await uow.outbox.add(
                        str(uuid.uuid4()), CALLBACK_KIND, callback.url, body, customer.id, now
                    )
                    if ev.status in FINAL:
                        await uow.customers.clear_callback(customer.id)
        if changed:
            await uow.customers.save_type_statuses(customer.id, changed, set(stored), now)
        await uow.customers.record_events(events)
        return result

    # -- operators ---------------------------------------------------------------------------

    @property
    def type_names(self) -> tuple[str, ...]:
        return tuple(self._types)

    async def listing(
        self, limit: int, offset: int, *, status: str | None = None, type_name: str | None = None
    ) -> list[dict[str, Any]]:
        """Customers for operators, newest first: whose record each is, and its status and
        reviewer's decision per type (no personal data)."""
        async with self._uow(read_only=True) as uow:
            return await uow.customers.recent(limit, offset, status=status, type_name=type_name)

    async def review_state(self, customer_id: str) -> dict[str, Any]:
        """One customer for operators: status, decision and message per type, each field's
        status (never its value), its files' types and sizes, and its history."""
        async with self._uow(read_only=True) as uow:
            customer = await uow.customers.get(customer_id)
            if customer is None:
                raise NotFound("customer not found")
            statuses = await uow.customers.type_statuses(customer.id)
            fields = await uow.customers.fields(customer.id)
            files = await uow.customers.files_of(customer.id)
            events = await uow.customers.events(customer.id)
        return {
            "id": customer.id,
            "account": customer.account,
            "memo_type": customer.memo_type,
            "memo": customer.memo,
            "version": customer.version,
            "types": {
                name: {
                    "status": r.status,
                    "decision": r.decision,
                    # A decision holds for the data it judged; newer data needs a new one.
                    "decision_current": r.decision is not None
                    and r.decision_version == customer.version,
                    "message": r.message,
                }
                for name, r in sorted(statuses.items())
            },
            "fields": {
                name: {"status": r.status, "error": r.error, "file_id": r.file_id}
                for name, r in sorted(fields.items())
            },
            "files": [{k: v for k, v in _file_doc(f).items() if k != "customer_id"} for f in files],
            "events": [{k: v for k, v in e.items() if k != "customer_id"} for e in events],
        }

    # -- personal data for other packages ----------------------------------------------------

    async def personal_data(self, customer_id: str) -> dict[str, str]:
        """The customer's text fields in clear (SEP-3 dest_info; operators with the right)."""
        async with self._uow(read_only=True) as uow:
            rows = await uow.customers.fields(customer_id, with_values=True)
        return {
            name: self._vault.open_text(r.key_id, r.value, _field_context(customer_id, name))
            for name, r in rows.items()
            if r.value is not None and r.key_id is not None
        }

    async def payout_details(
        self, uow: UnitOfWork, customer_ids: set[str]
    ) -> dict[str, dict[str, str]]:
        """Where receivers are paid on Stellar (crypto_address, crypto_memo), opened, read in
        the caller's unit of work: one query for many customers."""
        rows = await uow.customers.values_named(
            sorted(customer_ids), ("crypto_address", "crypto_memo")
        )
        out: dict[str, dict[str, str]] = {}
        for customer_id, name, kid, value in rows:
            text = self._vault.open_text(kid, value, _field_context(customer_id, name))
            out.setdefault(customer_id, {})[name] = text
        return out


def _field_context(customer_id: str, name: str) -> str:
    return f"customer_field:{customer_id}:{name}"


def _file_context(file_id: str) -> str:
    return f"customer_file:{file_id}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _file_doc(f: FileRow) -> dict[str, Any]:
    return {
        "file_id": f.id,
        "content_type": f.content_type,
        "size": f.size,
        "expires_at": _iso(f.expires_at) if f.expires_at else None,
        "customer_id": f.customer_id,
    }


PROVIDER_POLL_SECONDS = 600


def provider_review_handler(service: CustomerService, provider: KycProvider) -> Any:
    """The outbox handler of queued KYC reviews."""
    from gateway.outbox import DeliveryWaiting

    async def handle(row: Any) -> None:
        if not await service.review(provider, row.body):
            raise DeliveryWaiting(PROVIDER_POLL_SECONDS, "the KYC provider is still reviewing")

    return handle


def _memo_id_or_none(memo: object) -> str | None:
    try:
        return normalize_memo(memo, "id")
    except InvalidField:
        return None
