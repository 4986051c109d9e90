"""Channel accounts: a pool of accounts that give payout transactions their sequence numbers,
so several can be in flight at once. Their keys derive from the distribution secret; the
distribution account funds them with a little XLM for fees and takes it back on delete.
Without any, the distribution account is the one lane."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from stellar_sdk import Account, Keypair, TransactionBuilder

from gateway.disbursement.submitter import bid, channel_keypair
from gateway.errors import Conflict, HorizonBadResponse, HorizonUnavailable, InvalidField
from gateway.outbound.horizon import Horizon
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWorkFactory

MAX_CHANNELS = 100  # per create, as one transaction holds at most 100 operations


class Channels:
    def __init__(
        self,
        settings: Settings,
        *,
        uow: UnitOfWorkFactory,
        horizon: Horizon,
        distribution: Keypair,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._s = settings
        self._uow = uow
        self._horizon = horizon
        self._distribution = distribution
        self._clock = clock

    async def _send(self, ops: Callable[[TransactionBuilder], None], signers: list[Keypair]) -> str:
        """One transaction from the distribution account; its hash, or Conflict."""
        me = self._distribution.public_key
        account = await self._horizon.account(me)
        if account is None:
            raise Conflict("the distribution account does not exist on the network")
        fee = bid(await self._horizon.fee_stats(), self._s.disbursement.max_fee_stroops)
        builder = TransactionBuilder(
            Account(me, account.sequence), self._s.network_passphrase, base_fee=fee
        ).set_timeout(self._s.disbursement.tx_timeout_seconds)
        ops(builder)
        tx = builder.build()
        for keys in [self._distribution, *signers]:
            tx.sign(keys)
        try:
            answer = await self._horizon.submit(tx.to_xdr())
        except (HorizonUnavailable, HorizonBadResponse) as exc:
            raise Conflict(
                f"no answer from Horizon ({exc}); run `gateway channels verify` to see what "
                "happened before trying again"
            ) from None
        if not answer.successful:
            codes = ", ".join([answer.tx_code or "rejected", *answer.op_codes])
            raise Conflict(f"the network refused the transaction: {codes}")
        async with self._uow() as uow:
            # The distribution account spent a sequence number: its lane must know.
            lane = await uow.submissions.get_lane(me)
            if lane is not None and lane["open_tx"] is None:
                await uow.submissions.set_lane(me, sequence=account.sequence + 1)
                await uow.commit()
        return tx.hash_hex()

    async def create(self, count: int) -> list[dict[str, Any]]:
        """``count`` new channel accounts, funded in one transaction (accounts of a create
        that lost its answer are found and recorded, not funded twice)."""
        if not 1 <= count <= MAX_CHANNELS:
            raise InvalidField("count", f"must be between 1 and {MAX_CHANNELS}")
        async with self._uow(read_only=True) as uow:
            first = await uow.submissions.next_index()
        wanted = [(i, channel_keypair(self._distribution, i)) for i in range(first, first + count)]
        found = {
            keys.public_key: await self._horizon.account(keys.public_key) for _, keys in wanted
        }
        missing = [account for account, there in found.items() if there is None]
        if missing:
            balance = str(self._s.disbursement.channel_balance)

            def fund(builder: TransactionBuilder) -> None:
                for account in missing:
                    builder.append_create_account_op(account, balance)

            await self._send(fund, [])
            for account in missing:  # their sequence numbers, now that they exist
                found[account] = await self._horizon.account(account)
        for account, there in found.items():
            if there is None:
                raise Conflict(f"channel account {account} was not created")
        now = self._clock()
        async with self._uow() as uow:  # no network call while the lanes are written
            for idx, keys in wanted:
                there = found[keys.public_key]
                assert there is not None
                await uow.submissions.add_lane(keys.public_key, idx, there.sequence, now)
            me = await uow.submissions.get_lane(self._distribution.public_key)
            if me is not None:  # channels take over: the distribution account only signs
                await uow.submissions.set_lane(me["account_id"], status="retired", updated_at=now)
            await uow.commit()
        return await self.lanes()

    async def lanes(self) -> list[dict[str, Any]]:
        async with self._uow(read_only=True) as uow:
            return await uow.submissions.lanes()

    async def verify(self) -> list[dict[str, Any]]:
        """Each lane against the network: it exists, holds XLM for fees, and (when idle) its
        sequence number is the network's. A halted lane that is fit again becomes active."""
        out = []
        floor = Decimal(1)  # the minimum balance of an account with no subentries
        now = self._clock()
        for lane in await self.lanes():
            found = await self._horizon.account(lane["account_id"])
            problems = []
            if found is None:
                problems.append("does not exist on the network")
            else:
                xlm = found.balance(None)
                spare = (xlm.amount if xlm else Decimal(0)) - floor
                if lane["idx"] is not None and spare < Decimal("0.1"):
                    problems.append(f"{spare:.7f} XLM above its reserve: too little for fees")
            values: dict[str, Any] = {}
            if found is not None and lane["open_tx"] is None and found.sequence != lane["sequence"]:
                values["sequence"] = found.sequence
            if lane["status"] == "halted" and not problems:
                values.update(status="active", note=None)
            if values:
                async with self._uow() as uow:
                    await uow.submissions.set_lane(lane["account_id"], updated_at=now, **values)
                    await uow.commit()
            out.append({**lane, **values, "problems": problems})
        return out

    async def delete(self) -> list[str]:
        """Every idle channel account merged back into the distribution account; busy ones
        stop taking work and are left for a later delete. Returns those removed."""
        now = self._clock()
        async with self._uow() as uow:
            lanes = [x for x in await uow.submissions.lanes() if x["idx"] is not None]
            for lane in lanes:
                await uow.submissions.set_lane(lane["account_id"], status="retired", updated_at=now)
            await uow.commit()
        async with self._uow(read_only=True) as uow:  # read again: a lease may have won
            lanes = [x for x in await uow.submissions.lanes() if x["idx"] is not None]
        idle = [x for x in lanes if x["open_tx"] is None]
        if idle:
            keys = [channel_keypair(self._distribution, x["idx"]) for x in idle]

            def merge(builder: TransactionBuilder) -> None:
                for k in keys:
                    builder.append_account_merge_op(
                        self._distribution.public_key, source=k.public_key
                    )

            await self._send(merge, keys)
        async with self._uow() as uow:
            for lane in idle:
                await uow.submissions.remove_lane(lane["account_id"])
            if len(idle) == len(lanes):  # no channels left: the distribution account sends
                me = await uow.submissions.get_lane(self._distribution.public_key)
                if me is not None:
                    await uow.submissions.set_lane(
                        me["account_id"], status="active", updated_at=now
                    )
            await uow.commit()
        return [x["account_id"] for x in idle]
