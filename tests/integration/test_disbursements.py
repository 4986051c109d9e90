"""Bulk disbursement uploads on SQLite and PostgreSQL: all or nothing, the original file kept,
external payment ids never paid twice across uploads, and the operators' command."""

from __future__ import annotations

import asyncio
import json

import pytest
from stellar_sdk import Keypair

from gateway.__main__ import main
from gateway.db.tables import (
    audit_log,
    disbursement_events,
    disbursement_payments,
    disbursements,
)
from gateway.db.uow import UnitOfWorkFactory
from gateway.disbursement.service import DisbursementService, RowsRefused
from tests.conftest import REPO, TEST_JWT_SECRET, TEST_KYC_KEY, TEST_SIGNING_SECRET

pytestmark = pytest.mark.asyncio

G = Keypair.random().public_key
HEADER = "receiver_reference,amount,asset_code,destination,memo,external_payment_id\n"


@pytest.fixture
def service(make_settings, engine) -> DisbursementService:
    return DisbursementService(make_settings(), uow=UnitOfWorkFactory(engine))


async def count(engine, table) -> int:
    async with engine.connect() as conn:
        return len((await conn.execute(table.select())).all())


async def test_a_good_file_becomes_a_draft_with_its_payments_and_the_original(service, engine):
    content = (
        HEADER + f"emp-1,10.50,GWUSD,{G},7,pay-1\nemp-2,2,GWUSD,bob*bank.example,,pay-2\n"
    ).encode()
    made = await service.upload(content, name="November payroll", uploaded_by="operator:ana")
    assert (made["status"], made["payments"], json.loads(made["total"])) == (
        "draft",
        2,
        {"GWUSD": 125_000_000},
    )
    assert (made["approvals_needed"], made["uploaded_by"]) == (1, "operator:ana")
    async with engine.connect() as conn:
        rows = (await conn.execute(disbursement_payments.select())).mappings().all()
        original = (await conn.execute(disbursements.select())).mappings().one()["original"]
    assert bytes(original) == content
    assert sorted((r["line"], r["amount"], r["status"]) for r in rows) == [
        (2, 105_000_000, "draft"),
        (3, 20_000_000, "draft"),
    ]


async def test_a_file_with_problems_or_paid_ids_changes_nothing(service, engine):
    await service.upload((HEADER + f"a,1,GWUSD,{G},,pay-1\n").encode(), name="one", uploaded_by="x")
    again = HEADER + f"b,1,GWUSD,{G},,pay-2\nc,1,GWUSD,{G},,pay-1\n"
    with pytest.raises(RowsRefused) as refused:
        await service.upload(again.encode(), name="two", uploaded_by="x")
    first = (await service_list(engine))[0]
    assert refused.value.extra["problems"] == [
        f"line 3: external_payment_id: is in disbursement {first} already"
    ]
    with pytest.raises(RowsRefused) as bad:
        await service.upload(
            (HEADER + "b,-1,GWUSD,nowhere,,\n").encode(), name="x", uploaded_by="x"
        )
    assert bad.value.extra["problems"] == [
        "line 2: amount: must be a positive decimal number with at most 7 decimals",
        "line 2: destination: must be a G... or M... account or a federation address name*domain",
    ]
    with pytest.raises(RowsRefused):
        await service.upload(HEADER.encode(), name="empty", uploaded_by="x")
    assert (await count(engine, disbursements), await count(engine, disbursement_payments)) == (
        1,
        1,
    )


async def service_list(engine) -> list[str]:
    async with engine.connect() as conn:
        return [
            r[0]
            for r in await conn.execute(
                disbursements.select().with_only_columns(disbursements.c.id)
            )
        ]


async def test_the_upload_command(database_url, monkeypatch, capsys, tmp_path, engine):
    for name, value in {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_SIGNING_SECRET": TEST_SIGNING_SECRET,
        "GATEWAY_JWT_SECRET": TEST_JWT_SECRET,
        "GATEWAY_KYC_KEY": TEST_KYC_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(HEADER + f"a,1,GWUSD,{G},,p-1\n")
    bad.write_text(HEADER + f"a,1,EURT,{G},,p-2\nb,x,GWUSD,{G},,p-3\n")
    config = ["--config", str(REPO / "config/testnet.toml")]

    def run(path) -> int:
        return main(
            ["disbursements", "upload", str(path), "--name", "n", "--operator", "ana", *config]
        )

    assert await asyncio.to_thread(run, good) == 0
    out = capsys.readouterr().out
    assert "1 payments" in out
    did = out.split()[1]
    act = ["disbursements", "act", did, "approve", "--operator", "bea", *config]
    assert await asyncio.to_thread(main, act) == 0
    assert capsys.readouterr().out == f"disbursement {did}: draft (1 of 1 approvals)\n"
    assert await asyncio.to_thread(main, act) == 1  # the same approver twice
    async with engine.connect() as conn:  # operators' commands are audited as the API is
        audited = [(r.action, r.actor) for r in await conn.execute(audit_log.select())]
    assert sorted(audited) == [
        ("disbursement.approve", "operator:bea"),
        ("disbursement.upload", "operator:ana"),
    ]
    assert "operator:bea has approved this disbursement already" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["disbursements", "show", did, *config]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [p["external_payment_id"] for p in shown["payment_rows"]] == ["p-1"]
    assert [(e["actor"], e["reason"]) for e in shown["history"]] == [("operator:bea", "approved")]
    assert "original" not in shown
    assert await asyncio.to_thread(main, ["disbursements", "list", *config]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["id"] == did
    assert await asyncio.to_thread(main, ["accounts", "status", *config]) == 1
    assert "disbursement.distribution_account: is not configured" in capsys.readouterr().err
    assert await asyncio.to_thread(run, bad) == 1
    err = capsys.readouterr().err
    assert "the file has 2 problem(s); nothing was kept" in err
    assert "line 2: asset_code: 'EURT' is not an asset paid out here" in err
    assert "line 3: amount: must be a positive decimal number" in err
    assert await asyncio.to_thread(run, tmp_path / "missing.csv") == 2
    assert await count(engine, disbursement_payments) == 1
    send = ["payouts", "send", "--asset", "GWUSD", "--amount", "5", "--to", G, "--memo", "9"]
    send += ["--external-id", "bonus-1"]
    assert await asyncio.to_thread(main, [*send, "--operator", "ivy", *config]) == 0
    out = capsys.readouterr().out
    assert out.endswith(": ready (awaiting 1 approval(s))\n") and out.startswith("direct payout")
    retry = ["disbursements", "act", did, "retry", "--operator", "cai", *config]
    assert await asyncio.to_thread(main, retry) == 1  # a draft has nothing to retry
    assert "ready" not in capsys.readouterr().out


async def test_operators_move_a_disbursement_through_the_model_with_its_history(
    make_settings, engine
):
    from gateway.disbursement.model import ApprovalRefused
    from gateway.errors import InvalidField, NotFound
    from gateway.history import IllegalTransition

    service = DisbursementService(
        make_settings(GATEWAY_DISBURSEMENT_APPROVALS="2"), uow=UnitOfWorkFactory(engine)
    )
    content = HEADER + f"a,1,GWUSD,{G},,q-1\nb,2,GWUSD,{G},,q-2\n"
    made = await service.upload(content.encode(), name="n", uploaded_by="operator:ana")
    did = made["id"]
    with pytest.raises(ApprovalRefused, match="the uploader cannot approve"):
        await service.act(did, "approve", "operator:ana")
    await service.act(did, "approve", "operator:bea")
    with pytest.raises(ApprovalRefused, match="already"):
        await service.act(did, "approve", "operator:bea")
    ready = await service.act(did, "ready", "operator:ana")
    assert ready["status"] == "ready"
    approved = await service.act(did, "approve", "operator:cai")
    assert json.loads(approved["approvers"]) == ["operator:bea", "operator:cai"]
    with pytest.raises(IllegalTransition):
        await service.act(did, "pause", "operator:ana")  # not started
    with pytest.raises(InvalidField):
        await service.act(did, "start", "operator:ana")
    with pytest.raises(NotFound):
        await service.act("nope", "cancel", "operator:ana")
    canceled = await service.act(did, "cancel", "operator:ana", "wrong month")
    assert canceled["status"] == "canceled"
    async with engine.connect() as conn:
        statuses = [r.status for r in await conn.execute(disbursement_payments.select())]
        events = (await conn.execute(disbursement_events.select())).mappings().all()
    assert statuses == ["canceled", "canceled"]
    history = [(e["payment_id"] is not None, e["to_status"], e["actor"]) for e in events]
    assert history == [
        (False, "draft", "operator:bea"),  # the approval, in the state it came in
        (False, "ready", "operator:ana"),
        (True, "ready", "operator:ana"),
        (True, "ready", "operator:ana"),
        (False, "ready", "operator:cai"),
        (False, "canceled", "operator:ana"),
        (True, "canceled", "operator:ana"),
        (True, "canceled", "operator:ana"),
    ]
    assert events[-1]["reason"] == "wrong month"


class FakeTomls:
    async def fetch(self, domain):
        from gateway.errors import RemoteTomlError

        if domain == "down.example":
            raise RemoteTomlError("stellar.toml of down.example could not be fetched")
        return {"FEDERATION_SERVER": f"https://{domain}/federation"}


class FakePeers:
    def __init__(self):
        self.asked = []

    async def resolve(self, server, address):
        from gateway.outbound.compliance_peers import PeerError

        self.asked.append(address)
        records = {
            "bob*bank.example": {"account_id": G},
            "eve*bank.example": {"account_id": G, "memo_type": "id", "memo": "77"},
        }
        if address not in records:
            raise PeerError("the receiver is not known to its federation server")
        return records[address]


async def test_federation_destinations_are_resolved_when_the_disbursement_becomes_ready(
    make_settings, engine
):
    peers = FakePeers()
    service = DisbursementService(
        make_settings(), uow=UnitOfWorkFactory(engine), tomls=FakeTomls(), peers=peers
    )
    bad = HEADER + (
        "a,1,GWUSD,bob*bank.example,5,r-1\n"
        "b,1,GWUSD,nobody@x.io*bank.example,,r-2\n"
        "c,1,GWUSD,eve*bank.example,9,r-3\n"
        "d,1,GWUSD,bob*down.example,,r-4\n"
    )
    made = await service.upload(bad.encode(), name="n", uploaded_by="operator:ana")
    with pytest.raises(RowsRefused) as refused:
        await service.act(made["id"], "ready", "operator:ana")
    assert refused.value.extra["problems"] == [
        "line 3: destination: the receiver is not known to its federation server",
        "line 4: memo: the federation address carries its own memo; leave the row's memo empty",
        "line 5: destination: stellar.toml of down.example could not be fetched",
    ]
    assert (await service.get(made["id"]))["status"] == "draft"  # nothing changed

    good = HEADER + (
        f"a,1,GWUSD,bob*bank.example,5,s-1\nb,1,GWUSD,eve*bank.example,,s-2\n"
        f"c,1,GWUSD,bob*bank.example,,s-3\nd,1,GWUSD,{G},6,s-4\n"
    )
    made = await service.upload(good.encode(), name="n", uploaded_by="operator:ana")
    peers.asked.clear()
    assert (await service.act(made["id"], "ready", "operator:ana"))["status"] == "ready"
    assert peers.asked == ["bob*bank.example", "eve*bank.example"]  # once per address
    async with engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    disbursement_payments.select().where(
                        disbursement_payments.c.disbursement_id == made["id"]
                    )
                )
            )
            .mappings()
            .all()
        )
    paid = sorted(
        (r["line"], r["pay_to"], r["pay_memo_type"], r["pay_memo"], r["status"]) for r in rows
    )
    assert paid == [
        (2, G, "id", "5", "ready"),
        (3, G, "id", "77", "ready"),
        (4, G, None, None, "ready"),
        (5, G, "id", "6", "ready"),
    ]


ISSUER = "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC"
DISTRIBUTION = Keypair.random().public_key


class FakeHorizon:
    def __init__(self, gwusd: str):
        self.gwusd = gwusd

    async def account(self, account_id):
        from decimal import Decimal

        from gateway.outbound.horizon import Balance, HorizonAccount

        if account_id != DISTRIBUTION:
            return None
        return HorizonAccount(
            account_id, 1, 0, 0, 0, (), (Balance("GWUSD", ISSUER, Decimal(self.gwusd)),)
        )


async def ready_to_start(service, amount: str, key: str) -> str:
    made = await service.upload(
        (HEADER + f"a,{amount},GWUSD,{G},,{key}\n").encode(), name=key, uploaded_by="operator:ana"
    )
    await service.act(made["id"], "ready", "operator:ana")
    await service.act(made["id"], "approve", "operator:bea")
    return str(made["id"])


async def test_starting_reserves_against_the_distribution_balance(make_settings, engine):
    from gateway.errors import Conflict

    service = DisbursementService(
        make_settings(GATEWAY_DISBURSEMENT_DISTRIBUTION_ACCOUNT=DISTRIBUTION),
        uow=UnitOfWorkFactory(engine),
        horizon=FakeHorizon("100"),
    )
    first = await ready_to_start(service, "60", "t-1")
    second = await ready_to_start(service, "60", "t-2")
    third = await ready_to_start(service, "40", "t-3")
    assert (await service.act(first, "start", "operator:bea"))["status"] == "started"
    with pytest.raises(Conflict) as short:
        await service.act(second, "start", "operator:bea")
    assert str(short.value.message) == (
        "not enough in the distribution account: GWUSD: needs 60.00, 40.00 available "
        "(balance 100.00, promised 60.00)"
    )
    assert (await service.get(second))["status"] == "ready"
    assert (await service.act(third, "start", "operator:bea"))["status"] == "started"
    # A pause keeps the reservation; resuming does not reserve again.
    await service.act(first, "pause", "operator:bea", "checking")
    with pytest.raises(Conflict):
        await service.act(second, "start", "operator:bea")
    assert (await service.act(first, "start", "operator:bea"))["status"] == "started"
    # Canceling a paused one gives its amount back.
    await service.act(first, "pause", "operator:bea", None)
    await service.act(first, "cancel", "operator:bea", "wrong month")
    assert (await service.act(second, "start", "operator:bea"))["status"] == "started"


async def test_two_starts_at_once_cannot_overspend(make_settings, engine):
    service = DisbursementService(
        make_settings(GATEWAY_DISBURSEMENT_DISTRIBUTION_ACCOUNT=DISTRIBUTION),
        uow=UnitOfWorkFactory(engine),
        horizon=FakeHorizon("100"),
    )
    ids = [await ready_to_start(service, "60", f"c-{i}") for i in range(4)]
    results = await asyncio.gather(
        *(service.act(i, "start", "operator:bea") for i in ids), return_exceptions=True
    )
    started = [r for r in results if isinstance(r, dict)]
    assert len(started) == 1, results
    assert all("not enough" in str(r) for r in results if not isinstance(r, dict))


async def test_the_distribution_accounts_status_shows_what_is_promised_and_warns(
    make_settings, engine
):
    from gateway.errors import InvalidField

    settings = make_settings(
        GATEWAY_DISBURSEMENT_DISTRIBUTION_ACCOUNT=DISTRIBUTION,
        GATEWAY_DISBURSEMENT_LOW_BALANCE="50",
    )
    service = DisbursementService(
        settings, uow=UnitOfWorkFactory(engine), horizon=FakeHorizon("100")
    )
    started = await ready_to_start(service, "60", "u-1")
    await service.act(started, "start", "operator:bea")
    status = await service.accounts_status()
    assert status["assets"]["GWUSD"] == {
        "balance": "100.00",
        "promised": "60.00",
        "available": "40.00",
        "low": True,
    }
    assert status["warnings"] == ["GWUSD: 40.00 available, below 50.00"]
    missing = DisbursementService(
        make_settings(GATEWAY_DISBURSEMENT_DISTRIBUTION_ACCOUNT=Keypair.random().public_key),
        uow=UnitOfWorkFactory(engine),
        horizon=FakeHorizon("100"),
    )
    assert (await missing.accounts_status())["warnings"][0] == (
        "the distribution account does not exist on the network"
    )
    with pytest.raises(InvalidField):
        await DisbursementService(make_settings(), uow=UnitOfWorkFactory(engine)).accounts_status()


async def test_two_uploads_at_once_with_one_external_id_keep_one(service, engine):
    from gateway.errors import Conflict

    files = [(HEADER + f"{n},1,GWUSD,{G},,same-id\n").encode() for n in ("a", "b")]
    results = await asyncio.gather(
        *(service.upload(f, name="n", uploaded_by="operator:ana") for f in files),
        return_exceptions=True,
    )
    kept = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if not isinstance(r, dict)]
    assert len(kept) == 1 and len(refused) == 1
    assert isinstance(refused[0], RowsRefused | Conflict)
    assert (await count(engine, disbursements), await count(engine, disbursement_payments)) == (
        1,
        1,
    )
