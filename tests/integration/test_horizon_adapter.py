"""HttpxHorizon against the fake Horizon, and against respx-mocked samples shaped like real
Horizon's documented JSON, so the adapter is known to read Horizon and not just the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset, IdMemo, Keypair, MuxedAccount, Network, TextMemo, TransactionBuilder
from stellar_sdk import Payment as PaymentOp

from gateway.errors import HorizonBadResponse, HorizonUnavailable
from gateway.outbound.horizon import Balance, HttpxHorizon, Payment, Signer
from gateway.sandbox.horizon import FakeHorizonTransport, FakeLedger
from tests.fakes.horizon import funded

PASSPHRASE = Network.TESTNET_NETWORK_PASSPHRASE
NOW = 1_700_000_000
BASE = "http://horizon.test"


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger(PASSPHRASE, clock=lambda: float(NOW))


@pytest.fixture
def transport(ledger: FakeLedger) -> FakeHorizonTransport:
    return FakeHorizonTransport(ledger)


@pytest.fixture
async def horizon(transport: FakeHorizonTransport) -> AsyncIterator[HttpxHorizon]:
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield HttpxHorizon(client)


def payment_xdr(
    ledger: FakeLedger,
    source: Keypair,
    *destinations: tuple[str | MuxedAccount, str],
    memo: TextMemo | IdMemo | None = None,
    sequence: int | None = None,
) -> tuple[str, str]:
    """(envelope XDR, hash) of a signed native payment transaction."""
    current = ledger.sequence_of(source.public_key) if sequence is None else sequence
    builder = TransactionBuilder(SdkAccount(source.public_key, current), PASSPHRASE, base_fee=100)
    for destination, amount in destinations:
        builder.append_operation(PaymentOp(destination, Asset.native(), amount))
    if memo is not None:
        builder.add_memo(memo)
    envelope = builder.add_time_bounds(0, 0).build()
    envelope.sign(source)
    return envelope.to_xdr(), envelope.hash_hex()


# ----------------------------------------------------------------------------- against the fake


async def test_account_found_and_not_found(ledger: FakeLedger, horizon: HttpxHorizon) -> None:
    issuer, alice, cosigner = funded(ledger), funded(ledger), Keypair.random()
    ledger.add_trustline(alice.public_key, "USDC", issuer.public_key, limit="1000", balance="7.25")
    ledger.add_signer(alice.public_key, cosigner.public_key, 2)
    ledger.set_thresholds(alice.public_key, low=1, med=2, high=3)

    account = await horizon.account(alice.public_key)

    assert account is not None
    assert account.account_id == alice.public_key
    assert account.sequence == 1 << 32
    assert (account.low_threshold, account.med_threshold, account.high_threshold) == (1, 2, 3)
    assert set(account.signers) == {
        Signer(key=cosigner.public_key, weight=2),
        Signer(key=alice.public_key, weight=1),
    }
    assert account.balance(None) == Balance(None, None, Decimal("100"))
    assert account.balance("USDC", issuer.public_key) == Balance(
        "USDC", issuer.public_key, Decimal("7.25"), Decimal("1000")
    )
    assert await horizon.account(Keypair.random().public_key) is None


async def test_malformed_account_id_is_a_bad_response_as_with_real_horizon(
    horizon: HttpxHorizon,
) -> None:
    # Real Horizon answers 400 bad_request (invalid_field account_id) here, not 404.
    with pytest.raises(HorizonBadResponse):
        await horizon.account("GBADADDRESS")


async def test_submit_success_and_transaction_lookup(
    ledger: FakeLedger, horizon: HttpxHorizon
) -> None:
    alice, bob = funded(ledger), funded(ledger)
    envelope, tx_hash = payment_xdr(ledger, alice, (bob.public_key, "12.5"))

    result = await horizon.submit(envelope)
    record = await horizon.transaction(tx_hash)

    assert result.hash == tx_hash and result.successful is True and result.ledger == 2
    assert result.tx_code is None and result.op_codes == ()
    assert record is not None
    assert record.hash == tx_hash and record.successful is True and record.ledger == 2
    assert record.created_at == datetime.fromtimestamp(NOW, UTC)
    applied = ledger.applied(tx_hash)
    assert applied is not None and record.result_xdr == applied.result_xdr
    assert await horizon.transaction("00" * 32) is None


async def test_submit_failures_carry_result_codes(
    ledger: FakeLedger, horizon: HttpxHorizon
) -> None:
    alice, bob = funded(ledger, "5"), funded(ledger)
    underfunded, tx_hash = payment_xdr(ledger, alice, (bob.public_key, "4.5"))
    stale, _ = payment_xdr(ledger, alice, (bob.public_key, "1"), sequence=0)

    failed = await horizon.submit(underfunded)
    bad_seq = await horizon.submit(stale)

    assert failed.successful is False
    assert failed.tx_code == "tx_failed" and failed.op_codes == ("op_underfunded",)
    assert failed.hash is None  # real Horizon does not echo the hash for failures
    assert bad_seq.tx_code == "tx_bad_seq" and bad_seq.op_codes == ()
    record = await horizon.transaction(tx_hash)  # fee was charged: it is in a ledger
    assert record is not None and record.successful is False
    malformed = await horizon.submit("AAAA not an envelope")
    assert (malformed.successful, malformed.tx_code) == (False, "tx_malformed")


async def test_fee_stats_and_ledger_state(ledger: FakeLedger, horizon: HttpxHorizon) -> None:
    ledger.set_base_fee(700)

    stats = await horizon.fee_stats()
    state = await horizon.ledger_state()

    assert (stats.last_ledger_base_fee, stats.p50, stats.p90, stats.p99) == (100, 700, 700, 700)
    assert state.latest_ledger == 1
    assert state.closed_at == datetime.fromtimestamp(NOW, UTC)
    assert state.network_passphrase == PASSPHRASE


async def test_payments_pages_follow_the_cursor(ledger: FakeLedger, horizon: HttpxHorizon) -> None:
    alice, hub = funded(ledger, "1000"), funded(ledger)
    newcomer = Keypair.random().public_key
    ledger.friendbot(newcomer)
    memos = [TextMemo("order-1"), IdMemo(9001), None]
    for memo in memos:
        envelope, _ = payment_xdr(
            ledger,
            alice,
            (hub.public_key, "1"),
            (MuxedAccount(hub.public_key, 77), "2"),
            (newcomer, "3"),
            memo=memo,
        )
        await horizon.submit(envelope)

    records: list[Payment] = []
    cursor = None
    for _ in range(10):
        page = await horizon.payments(hub.public_key, cursor, 4)
        records.extend(page.records)
        if not page.records:
            assert page.next_cursor == cursor
            break
        cursor = page.next_cursor

    assert len(records) == 6
    assert [int(r.paging_token) for r in records] == sorted({int(r.id) for r in records})
    assert [(r.amount, r.to_muxed_id) for r in records[:2]] == [
        (Decimal("1"), None),
        (Decimal("2"), "77"),
    ]
    assert [(r.memo_type, r.memo) for r in records[::2]] == [
        ("text", "order-1"),
        ("id", "9001"),
        ("none", None),
    ]
    assert all(r.source == alice.public_key and r.to == hub.public_key for r in records)
    assert records[0].ledger == 3 and records[0].asset_code is None
    welcome = (await horizon.payments(newcomer, None, 1)).records[0]
    assert welcome.type == "create_account" and welcome.amount == Decimal("10000")
    assert welcome.to == newcomer


async def test_lost_answer_is_unavailable_and_the_retry_finds_the_original(
    ledger: FakeLedger, transport: FakeHorizonTransport, horizon: HttpxHorizon
) -> None:
    alice, bob = funded(ledger), funded(ledger)
    envelope, tx_hash = payment_xdr(ledger, alice, (bob.public_key, "1"))
    transport.faults.add("lost_answer", method="POST", path="/transactions", count=1)

    with pytest.raises(HorizonUnavailable):
        await horizon.submit(envelope)

    record = await horizon.transaction(tx_hash)
    assert record is not None and record.successful
    retried = await horizon.submit(envelope)
    assert retried.successful and retried.ledger == record.ledger
    assert ledger.balance_of(bob.public_key) == Decimal("101")


@pytest.mark.parametrize(
    "fault",
    [
        {"mode": "timeout"},
        {"mode": "status", "status": 429, "retry_after": 3},
        {"mode": "status", "status": 503},
        {"mode": "status", "status": 504},
        {"mode": "lost_answer", "status": 504},
    ],
    ids=["timeout", "429", "503", "504", "lost-504"],
)
async def test_faults_surface_as_horizon_unavailable(
    ledger: FakeLedger,
    transport: FakeHorizonTransport,
    horizon: HttpxHorizon,
    fault: dict[str, Any],
) -> None:
    alice, bob = funded(ledger), funded(ledger)
    envelope, _ = payment_xdr(ledger, alice, (bob.public_key, "1"))
    transport.faults.add(**fault)

    calls = [
        horizon.account(alice.public_key),
        horizon.submit(envelope),
        horizon.transaction("ab" * 32),
        horizon.fee_stats(),
        horizon.payments(alice.public_key, None, 10),
        horizon.ledger_state(),
    ]
    for call in calls:
        with pytest.raises(HorizonUnavailable):
            await call


# ----------------------------------------------------------------------------- real Horizon JSON

REAL = "https://horizon-testnet.stellar.org"
ISSUER = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"
ACCOUNT = "GDQJUTQYK2MQX2VGDR2FYWLIYAQIEGXTQVTFEMGH2BEWFG4BRUY4CKI7"
FUNDER = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"
TX_HASH = "3389e9f0f1a65f19736cacf544c2e825313e8447f569233bb8db39aa607c8889"


def _links(*names: str) -> dict[str, Any]:
    return {name: {"href": f"{REAL}/{name}"} for name in names}


REAL_ACCOUNT: dict[str, Any] = {
    "_links": _links("self", "transactions", "operations", "payments", "effects", "offers"),
    "id": ACCOUNT,
    "account_id": ACCOUNT,
    "sequence": "3902600558690327",
    "sequence_ledger": 2354001,
    "sequence_time": "1675875660",
    "subentry_count": 3,
    "last_modified_ledger": 2354001,
    "last_modified_time": "2023-02-08T17:01:00Z",
    "thresholds": {"low_threshold": 1, "med_threshold": 2, "high_threshold": 2},
    "flags": {
        "auth_required": False,
        "auth_revocable": False,
        "auth_immutable": False,
        "auth_clawback_enabled": False,
    },
    "balances": [
        {
            "balance": "12.0000000",
            "liquidity_pool_id": "dd7b1ab831c273310ddbec6f97870aa83c2fbd78ce22aded37ecbf4f3380fac7",
            "limit": "922337203685.4775807",
            "last_modified_ledger": 2354001,
            "is_authorized": False,
            "is_authorized_to_maintain_liabilities": False,
            "is_clawback_enabled": False,
            "asset_type": "liquidity_pool_shares",
        },
        {
            "balance": "250.5000000",
            "limit": "922337203685.4775807",
            "buying_liabilities": "0.0000000",
            "selling_liabilities": "0.0000000",
            "last_modified_ledger": 2354001,
            "is_authorized": True,
            "is_authorized_to_maintain_liabilities": True,
            "asset_type": "credit_alphanum4",
            "asset_code": "USDC",
            "asset_issuer": ISSUER,
        },
        {
            "balance": "9999.9999800",
            "buying_liabilities": "0.0000000",
            "selling_liabilities": "0.0000000",
            "asset_type": "native",
        },
    ],
    "signers": [
        {
            "weight": 1,
            "key": "XAIHMYITJ4Q7Y7ACEI6VBK46WNQAXQ77YNYSII5B4R53D6NJ3P2V6H7U",
            "type": "sha256_hash",
        },
        {"weight": 1, "key": FUNDER, "type": "ed25519_public_key", "sponsor": ISSUER},
        {"weight": 1, "key": ACCOUNT, "type": "ed25519_public_key"},
    ],
    "data": {"config.memo_required": "MQ=="},
    "num_sponsoring": 0,
    "num_sponsored": 1,
    "paging_token": ACCOUNT,
}


def _real_transaction(memo_type: str, memo: str | None, successful: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "_links": _links("self", "account", "ledger", "operations", "effects"),
        "id": TX_HASH,
        "paging_token": "10110389661577216",
        "successful": successful,
        "hash": TX_HASH,
        "ledger": 2354001,
        "created_at": "2023-02-08T17:01:00Z",
        "source_account": FUNDER,
        "source_account_sequence": "3902600558690326",
        "fee_account": FUNDER,
        "fee_charged": "100",
        "max_fee": "100000",
        "operation_count": 1,
        "envelope_xdr": "AAAAAgAAAAA=",
        "result_xdr": "AAAAAAAAAGQAAAAAAAAAAQAAAAAAAAABAAAAAAAAAAA=",
        "fee_meta_xdr": "AAAAAgAAAAA=",
        "memo_type": memo_type,
        "signatures": ["c2lnbmF0dXJl"],
        "valid_after": "1970-01-01T00:00:00Z",
        "preconditions": {"timebounds": {"min_time": "0"}},
    }
    if memo is not None:
        body["memo"] = memo
    return body


REAL_PAYMENTS: dict[str, Any] = {
    "_links": {
        "self": {"href": f"{REAL}/accounts/{ACCOUNT}/payments?cursor=&limit=10&order=asc"},
        "next": {"href": f"{REAL}/accounts/{ACCOUNT}/payments?cursor=10110389661577219"},
        "prev": {"href": f"{REAL}/accounts/{ACCOUNT}/payments?cursor=10110389661577217"},
    },
    "_embedded": {
        "records": [
            {
                "_links": _links("self", "transaction", "effects", "succeeds", "precedes"),
                "id": "10110389661577217",
                "paging_token": "10110389661577217",
                "transaction_successful": True,
                "source_account": FUNDER,
                "type": "create_account",
                "type_i": 0,
                "created_at": "2023-02-08T17:01:00Z",
                "transaction_hash": TX_HASH,
                "starting_balance": "10000.0000000",
                "funder": FUNDER,
                "account": ACCOUNT,
                "transaction": _real_transaction("none", None),
            },
            {
                "_links": _links("self", "transaction", "effects", "succeeds", "precedes"),
                "id": "10110389661577218",
                "paging_token": "10110389661577218",
                "transaction_successful": True,
                "source_account": FUNDER,
                "type": "payment",
                "type_i": 1,
                "created_at": "2023-02-08T17:01:00Z",
                "transaction_hash": TX_HASH,
                "asset_type": "credit_alphanum4",
                "asset_code": "USDC",
                "asset_issuer": ISSUER,
                "from": FUNDER,
                "to": ACCOUNT,
                "to_muxed": MuxedAccount(ACCOUNT, 1234).account_muxed,
                "to_muxed_id": "1234",
                "amount": "250.5000000",
                "transaction": _real_transaction("id", "42"),
            },
            {
                "_links": _links("self", "transaction", "effects", "succeeds", "precedes"),
                "id": "10110389661577219",
                "paging_token": "10110389661577219",
                "transaction_successful": True,
                "source_account": FUNDER,
                "type": "path_payment_strict_send",
                "type_i": 13,
                "created_at": "2023-02-08T17:01:00Z",
                "transaction_hash": TX_HASH,
                "asset_type": "native",
                "from": FUNDER,
                "to": ACCOUNT,
                "amount": "5.1234567",
                "path": [],
                "source_amount": "1.0000000",
                "destination_min": "5.0000000",
                "source_asset_type": "credit_alphanum4",
                "source_asset_code": "USDC",
                "source_asset_issuer": ISSUER,
                "transaction": _real_transaction("text", "hello"),
            },
        ]
    },
}

REAL_FAILED: dict[str, Any] = {
    "type": "https://stellar.org/horizon-errors/transaction_failed",
    "title": "Transaction Failed",
    "status": 400,
    "detail": "The transaction failed when submitted to the stellar network. The "
    "`extras.result_codes` field on this response contains further details.",
    "extras": {
        "envelope_xdr": "AAAAAgAAAAA=",
        "result_codes": {"transaction": "tx_failed", "operations": ["op_success", "op_no_trust"]},
        "result_xdr": "AAAAAAAAAMj/////AAAAAgAAAAAAAAABAAAAAAAAAAAAAAAB/////AAAAAA=",
    },
}

REAL_SUBMIT_TIMEOUT: dict[str, Any] = {
    "type": "https://stellar.org/horizon-errors/transaction_submission_timeout",
    "title": "Transaction Submission Timeout",
    "status": 504,
    "detail": "Your transaction submission request has timed out.",
    "extras": {"hash": TX_HASH, "envelope_xdr": "AAAAAgAAAAA="},
}

REAL_FEE_STATS: dict[str, Any] = {
    "last_ledger": "2354001",
    "last_ledger_base_fee": "100",
    "ledger_capacity_usage": "0.97",
    "fee_charged": {
        k: v
        for k, v in zip(
            [
                "max",
                "min",
                "mode",
                "p10",
                "p20",
                "p30",
                "p40",
                "p50",
                "p60",
                "p70",
                "p80",
                "p90",
                "p95",
                "p99",
            ],
            [
                "5000",
                "100",
                "100",
                "100",
                "100",
                "100",
                "100",
                "120",
                "150",
                "200",
                "300",
                "1000",
                "2000",
                "4000",
            ],
            strict=True,
        )
    },
    "max_fee": {"max": "100000", "min": "100", "mode": "100000", "p50": "10000"},
}

REAL_ROOT: dict[str, Any] = {
    "_links": _links("account", "fee_stats", "payments", "self", "transaction"),
    "horizon_version": "2.28.3-ffa8d4fd7d5c6b5d2a4c8b7a5a9de6d6f2d0f7a3",
    "core_version": "stellar-core 20.2.0 (ab6a2b5b)",
    "ingest_latest_ledger": 2354001,
    "history_latest_ledger": 2354001,
    "history_latest_ledger_closed_at": "2023-02-08T17:01:00Z",
    "history_elder_ledger": 2,
    "core_latest_ledger": 2354001,
    "network_passphrase": PASSPHRASE,
    "current_protocol_version": 20,
    "supported_protocol_version": 20,
    "core_supported_protocol_version": 20,
}


@pytest.fixture
async def real() -> AsyncIterator[tuple[respx.MockRouter, HttpxHorizon]]:
    with respx.mock(base_url=REAL, assert_all_called=False) as router:
        async with httpx.AsyncClient(base_url=REAL) as client:
            yield router, HttpxHorizon(client)


async def test_adapter_reads_real_horizon_documents(
    real: tuple[respx.MockRouter, HttpxHorizon],
) -> None:
    router, horizon = real
    router.get(f"/accounts/{ACCOUNT}").respond(200, json=REAL_ACCOUNT)
    router.get(f"/transactions/{TX_HASH}").respond(200, json=_real_transaction("none", None))
    router.get(f"/accounts/{ACCOUNT}/payments").respond(200, json=REAL_PAYMENTS)
    router.get("/fee_stats").respond(200, json=REAL_FEE_STATS)
    router.get("/").respond(200, json=REAL_ROOT)

    account = await horizon.account(ACCOUNT)
    record = await horizon.transaction(TX_HASH)
    page = await horizon.payments(ACCOUNT, None, 10)
    stats = await horizon.fee_stats()
    state = await horizon.ledger_state()

    assert account is not None and account.sequence == 3902600558690327
    assert [s.key for s in account.signers] == [FUNDER, ACCOUNT]  # sha256_hash signer skipped
    assert len(account.balances) == 2  # pool shares skipped
    assert account.balance("USDC", ISSUER) == Balance(
        "USDC", ISSUER, Decimal("250.5"), Decimal("922337203685.4775807")
    )
    assert account.balance(None) == Balance(None, None, Decimal("9999.99998"))
    assert record is not None and record.ledger == 2354001 and record.successful
    assert [(p.type, p.to, p.amount, p.asset_code) for p in page.records] == [
        ("create_account", ACCOUNT, Decimal("10000"), None),
        ("payment", ACCOUNT, Decimal("250.5"), "USDC"),
        ("path_payment_strict_send", ACCOUNT, Decimal("5.1234567"), None),
    ]
    assert page.records[0].source == FUNDER and page.records[1].to_muxed_id == "1234"
    assert [(p.memo_type, p.memo) for p in page.records] == [
        ("none", None),
        ("id", "42"),
        ("text", "hello"),
    ]
    assert page.next_cursor == "10110389661577219"
    request = router.calls[2].request
    assert request.url.params["join"] == "transactions" and request.url.params["order"] == "asc"
    assert (stats.last_ledger_base_fee, stats.p50, stats.p90, stats.p99) == (100, 120, 1000, 4000)
    assert state.latest_ledger == 2354001 and state.network_passphrase == PASSPHRASE


async def test_adapter_reads_real_submission_answers(
    real: tuple[respx.MockRouter, HttpxHorizon],
) -> None:
    router, horizon = real
    route = router.post("/transactions")
    route.side_effect = [
        httpx.Response(200, json=_real_transaction("none", None)),
        httpx.Response(400, json=REAL_FAILED),
        httpx.Response(504, json=REAL_SUBMIT_TIMEOUT),
    ]

    ok = await horizon.submit("AAAAAgAAAAA=")
    failed = await horizon.submit("AAAAAgAAAAA=")
    with pytest.raises(HorizonUnavailable):
        await horizon.submit("AAAAAgAAAAA=")

    assert ok.successful and ok.hash == TX_HASH and ok.ledger == 2354001
    assert failed.tx_code == "tx_failed" and failed.op_codes == ("op_success", "op_no_trust")
    assert route.calls[0].request.content == b"tx=AAAAAgAAAAA%3D"


async def test_adapter_skips_contract_payment_records(
    real: tuple[respx.MockRouter, HttpxHorizon],
) -> None:
    router, horizon = real
    contract_transfer = {
        "_links": _links("self", "transaction", "effects", "succeeds", "precedes"),
        "id": "10110389661577220",
        "paging_token": "10110389661577220",
        "transaction_successful": True,
        "source_account": FUNDER,
        "type": "invoke_host_function",
        "type_i": 24,
        "created_at": "2023-02-08T17:01:00Z",
        "transaction_hash": TX_HASH,
        "function": "HostFunctionTypeHostFunctionTypeInvokeContract",
        "parameters": [],
        "address": "",
        "salt": "",
        "asset_balance_changes": [
            {
                "asset_type": "credit_alphanum4",
                "asset_code": "USDC",
                "asset_issuer": ISSUER,
                "type": "transfer",
                "from": FUNDER,
                "to": ACCOUNT,
                "amount": "1.0000000",
            }
        ],
    }
    records = list(REAL_PAYMENTS["_embedded"]["records"])
    page = {
        "_links": REAL_PAYMENTS["_links"],
        "_embedded": {"records": [*records, contract_transfer]},
    }
    router.get(f"/accounts/{ACCOUNT}/payments").respond(200, json=page)

    result = await horizon.payments(ACCOUNT, None, 10)

    assert len(result.records) >= 3
