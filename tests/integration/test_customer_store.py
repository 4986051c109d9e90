"""SEP-12 storage on SQLite and PostgreSQL: the customer and outbox repositories, sealed data at
rest, key rotation, and what concurrent requests, decisions and dispatchers leave behind.

Concurrency on PostgreSQL is made deterministic by holding row locks from another connection
(`queued_behind`) until every contender is waiting at the same statement; SQLite serializes
writers of one process on the unit of work's lock, so there the contenders simply race.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from stellar_sdk import Keypair

from gateway.__main__ import main
from gateway.db.customer_repository import FieldRow, FileRow, TypeStatusRow
from gateway.db.tables import customer_fields
from gateway.db.uow import UnitOfWorkFactory
from gateway.errors import BadRequest, InvalidField, RateLimited
from gateway.outbox import OutboxDispatcher
from gateway.personal_data import UnreadableData, Vault, decode_key, key_id
from gateway.sep10 import AuthSession
from gateway.sep12_customer import CustomerService
from gateway.sep12_customer.rotation import rotate
from gateway.types import ClientIdentity
from tests.conftest import (
    REPO,
    TEST_JWT_SECRET,
    TEST_KYC_KEY,
    TEST_SIGNING_SECRET,
    VERIFY_PHONE,
)
from tests.fakes.callbacks import FakeNotifier
from tests.fakes.sep3 import compliance_row
from tests.fakes.sep12 import JPEG, PNG, dump_tables

KEY_A = TEST_KYC_KEY
KEY_B = base64.b64encode(b"B" * 32).decode()
KEY_C = base64.b64encode(b"C" * 32).decode()
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PROVIDER = {
    "GATEWAY_KYC_VALIDATION": "provider",
    "GATEWAY_KYC_PROVIDER_URL": "https://kyc.test/reviews",
    "GATEWAY_KYC_PROVIDER_SECRET": "s",
}
SENDER = {"first_name": "Ada", "last_name": "Lovelace", "email_address": "ada@example.com"}


def session(account: str, memo: str | None = None) -> AuthSession:
    return AuthSession(
        client=ClientIdentity(account, memo),
        client_domain=None,
        home_domain=None,
        jti="test",
        issued_at=0,
        expires_at=2**31,
    )


@pytest.fixture
def uow(engine) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(engine)


@pytest.fixture
def build(make_settings, uow):
    """CustomerService on the test database, as build_services makes it."""

    def make(key: str = KEY_A, old: tuple[str, ...] = (), notifier=None, clock=None, **env):
        settings = make_settings(GATEWAY_KYC_KEY=key, **env)
        kwargs = {"clock": clock} if clock else {}
        return CustomerService(
            settings,
            uow=uow,
            vault=Vault.from_texts(key, old),
            notifier=notifier or FakeNotifier(),
            **kwargs,
        )

    return make


def pg(engine) -> bool:
    return engine.dialect.name == "postgresql"


@contextlib.asynccontextmanager
async def queued_behind(engine, lock_sql: str, params: dict) -> AsyncIterator[None]:
    """PostgreSQL: take row locks in another transaction for the duration of the block."""
    if not pg(engine):
        yield
        return
    async with engine.connect() as conn:
        await conn.begin()
        await conn.execute(text(lock_sql), params)
        try:
            yield
        finally:
            await conn.rollback()


async def until_waiting(engine, n: int, patience: float = 3.0) -> None:
    """PostgreSQL: until ``n`` sessions of this database wait for a lock (or ``patience`` ran out)."""
    if not pg(engine):
        return
    deadline = time.monotonic() + patience
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            if await conn.scalar(query) >= n:
                return
        await asyncio.sleep(0.01)


# -- repositories -------------------------------------------------------------------------------


async def test_a_customer_identity_is_created_once(uow):
    account = Keypair.random().public_key
    async with uow() as u:
        assert await u.customers.create("c1", account, "none", "", NOW) is True
        assert await u.customers.create("c2", account, "none", "", NOW) is False
        assert await u.customers.create("c3", account, "id", "1", NOW) is True
        await u.commit()
    async with uow(read_only=True) as u:
        first = await u.customers.find(account, "none", "")
        assert (first.id, first.version) == ("c1", 1)
        assert (await u.customers.find(account, "id", "1")).id == "c3"
        assert await u.customers.find(account, "id", "2") is None
        assert await u.customers.get("c2") is None
        assert sorted(await u.customers.find_all(account, None, None)) == ["c1", "c3"]
        assert await u.customers.find_all(account, "id", "1") == ["c3"]
    async with uow() as u:
        assert await u.customers.bump_version("c1", NOW) == 2
        await u.commit()


async def test_federation_names_and_memos_are_unique_and_go_with_their_customer(uow):
    account = Keypair.random().public_key
    async with uow() as u:
        await u.customers.create("c1", account, "none", "", NOW)
        await u.customers.create("c2", account, "id", "2", NOW)
        assert await u.federation.add("bob", "c1", "9223372036854775808", NOW) is True
        assert await u.federation.add("bob", "c2", "9223372036854775809", NOW) is False
        assert await u.federation.add("rob", "c2", "9223372036854775808", NOW) is False
        assert await u.federation.add("rob", "c2", "18446744073709551615", NOW) is True
        await u.commit()  # the refused inserts left the transaction usable
    async with uow(read_only=True) as u:
        assert (await u.federation.by_name("bob")).customer_id == "c1"
        assert (await u.federation.by_memo("18446744073709551615")).name == "rob"
        assert [n.name for n in await u.federation.list()] == ["bob", "rob"]
    async with uow() as u:
        await u.customers.delete("c2")
        await u.commit()
    async with uow(read_only=True) as u:
        assert [n.name for n in await u.federation.list()] == ["bob"]
        assert await u.federation.of_customer("c2") == []


async def test_compliance_requests_are_kept_once_per_domain_and_nonce(uow):
    row = compliance_row(id="r1", need_info=True, reason="review")
    async with uow() as u:
        assert await u.compliance.add(row) is True
        assert await u.compliance.add({**row, "id": "r2"}) is False  # same domain and nonce
        assert await u.compliance.add({**row, "id": "r3", "sender_domain": "other.test"})
        await u.commit()
    async with uow() as u:
        stored = await u.compliance.by_nonce("bank.test", "n-1")
        assert (stored["id"], stored["need_info"], stored["amount"]) == ("r1", True, 200_000_000)
        await u.compliance.decide("r1", {"tx_status": "ok", "decided_by": "operator:ana"}, NOW)
        await u.commit()
    async with uow(read_only=True) as u:
        assert (await u.compliance.get("r1"))["tx_status"] == "ok"
        assert [r["id"] for r in await u.compliance.list("pending")] == ["r3"]
        assert "data_sealed" not in (await u.compliance.list())[0]


async def test_fields_are_written_updated_and_read(uow):
    account = Keypair.random().public_key
    async with uow() as u:
        await u.customers.create("c1", account, "none", "", NOW)
        await u.customers.put_fields(
            "c1",
            [
                FieldRow("first_name", "ACCEPTED", None, "k1", b"\x01sealed", None),
                FieldRow("photo_id_front", "PROCESSING", None, None, None, "f1"),
            ],
            set(),
            NOW,
        )
        await u.commit()
    async with uow() as u:
        await u.customers.put_fields(
            "c1",
            [FieldRow("first_name", "PROCESSING", None, "k2", b"\x02resealed", None)],
            {"first_name", "photo_id_front"},
            NOW,
        )
        await u.customers.set_field_status("c1", ["photo_id_front"], "REJECTED", "blurry", NOW)
        await u.commit()
    async with uow(read_only=True) as u:
        without = await u.customers.fields("c1")
        with_values = await u.customers.fields("c1", with_values=True)
    assert without["first_name"] == FieldRow("first_name", "PROCESSING", None, "k2", None, None)
    assert with_values["first_name"].value == b"\x02resealed"
    assert with_values["photo_id_front"] == FieldRow(
        "photo_id_front", "REJECTED", "blurry", None, None, "f1"
    )


async def test_deleting_a_customer_erases_its_rows_but_not_its_history(uow, engine):
    account = Keypair.random().public_key
    async with uow() as u:
        await u.customers.create("c1", account, "none", "", NOW)
        await u.customers.create("c2", account, "id", "2", NOW)
        for cid in ("c1", "c2"):
            await u.customers.put_fields(
                cid, [FieldRow("first_name", "ACCEPTED", None, "k", b"x", None)], set(), NOW
            )
            await u.customers.add_file(
                FileRow(
                    f"f-{cid}", account, "none", "", cid, "image/png", 3, "k", b"abc", NOW, None
                )
            )
            await u.customers.set_verification(cid, "mobile_number", "d" * 64, NOW, NOW, per_hour=5)
            await u.customers.set_callback(cid, "https://w.test/cb", "sep31-sender", NOW)
            await u.customers.save_type_statuses(
                cid, [TypeStatusRow("sep31-sender", "ACCEPTED", None, None, None, None)], set(), NOW
            )
            await u.customers.record_events(
                [
                    {
                        "customer_id": cid,
                        "type": "sep31-sender",
                        "from_status": None,
                        "to_status": "ACCEPTED",
                        "actor": "t",
                        "reason": None,
                        "at": NOW,
                    }
                ]
            )
        await u.commit()
    async with uow() as u:
        await u.customers.delete("c1")
        await u.commit()
    tables = await dump_tables(engine)
    for name in (
        "customers",
        "customer_fields",
        "customer_files",
        "customer_verifications",
        "customer_callbacks",
        "customer_type_status",
    ):
        key = "id" if name == "customers" else "customer_id"
        assert [r[key] for r in tables[name]] == ["c2"], name
    assert sorted(r["customer_id"] for r in tables["customer_events"]) == ["c1", "c2"]


async def test_files_expire_only_while_unattached(uow):
    account = Keypair.random().public_key
    later = NOW + timedelta(days=1)

    def file(fid: str, memo_type: str = "none", memo: str = "", customer=None, expires=later):
        return FileRow(
            fid, account, memo_type, memo, customer, "image/png", 3, "k", b"abc", NOW, expires
        )

    async with uow() as u:
        await u.customers.create("c1", account, "none", "", NOW)
        for row in (
            file("loose"),
            file("memo-5", "id", "5"),
            file("attached"),
            file("other-memo", "id", "6"),
        ):
            await u.customers.add_file(row)
        await u.customers.attach_file("attached", "c1")
        await u.commit()
    async with uow() as u:
        assert (await u.customers.file("attached")).expires_at is None
        assert (await u.customers.file("loose", with_content=True)).content == b"abc"
        assert (await u.customers.file("loose")).content is None
        assert await u.customers.delete_expired_files(later) == 0
        await u.customers.delete_unattached_files(account, "id", "5")
        await u.commit()
    async with uow() as u:
        assert await u.customers.file("memo-5") is None
        assert await u.customers.file("other-memo") is not None
        assert await u.customers.delete_expired_files(later + timedelta(seconds=1)) == 2
        await u.commit()
    async with uow(read_only=True) as u:
        assert [f.id for f in await u.customers.files_of("c1")] == ["attached"]
        assert await u.customers.file("loose") is None


async def test_verification_codes_and_callbacks_are_replaced_not_added(uow):
    account = Keypair.random().public_key
    async with uow() as u:
        await u.customers.create("c1", account, "none", "", NOW)
        assert await u.customers.set_verification(
            "c1", "mobile_number", "a" * 64, NOW, NOW, per_hour=2
        )
        await u.customers.count_verification_attempt("c1", "mobile_number")
        await u.customers.count_verification_attempt("c1", "mobile_number")
        assert (await u.customers.verification("c1", "mobile_number")).attempts == 2
        assert await u.customers.set_verification(
            "c1", "mobile_number", "b" * 64, NOW, NOW, per_hour=2
        )
        pending = await u.customers.verification("c1", "mobile_number")
        assert (pending.code_digest, pending.attempts, pending.expires_at) == ("b" * 64, 0, NOW)
        # A third code within the hour is refused; an hour later it is sent.
        later = NOW + timedelta(minutes=59)
        assert not await u.customers.set_verification(
            "c1", "mobile_number", "c" * 64, later, later, per_hour=2
        )
        assert (await u.customers.verification("c1", "mobile_number")).code_digest == "b" * 64
        hour = NOW + timedelta(hours=1)
        assert await u.customers.set_verification(
            "c1", "mobile_number", "c" * 64, hour, hour, per_hour=2
        )
        await u.customers.clear_verification("c1", "mobile_number")
        assert await u.customers.verification("c1", "mobile_number") is None
        await u.customers.set_callback("c1", "https://a.test/cb", "sep31-sender", NOW)
        await u.customers.set_callback("c1", "https://b.test/cb", "sep31-receiver", NOW)
        cb = await u.customers.callback("c1")
        assert (cb.url, cb.type) == ("https://b.test/cb", "sep31-receiver")
        await u.customers.clear_callback("c1")
        assert await u.customers.callback("c1") is None
        await u.commit()


async def test_outbox_messages_are_leased_retried_dead_lettered_and_redelivered(uow):
    async with uow() as u:
        await u.outbox.add("m1", "sep12_callback", "https://w.test/cb", b"{}", "c1", NOW)
        await u.outbox.add("m2", "kyc_review", "kyc-provider", b"{}", "c1", NOW + timedelta(1))
        await u.commit()
    lease = NOW + timedelta(seconds=120)
    async with uow() as u:
        [first] = await u.outbox.claim(NOW, lease, 10, ("sep12_callback",))
        assert first.id == "m1"
        await u.commit()
    async with uow() as u:
        assert await u.outbox.claim(NOW + timedelta(seconds=119), lease, 10, None) == []
        [again] = await u.outbox.claim(lease, lease + timedelta(seconds=120), 10, None)
        assert (again.id, again.attempts, again.body) == ("m1", 0, b"{}")
        await u.outbox.retry(first, NOW, "stale lease: ignored")  # lease passed to `again`
        await u.outbox.retry(again, NOW + timedelta(hours=1), "HTTP 500" + "x" * 400)
        await u.commit()
    async with uow() as u:
        [m2] = await u.outbox.claim(NOW + timedelta(days=2), lease, 10, ("kyc_review",))
        await u.outbox.postpone(m2, NOW + timedelta(days=2), "waiting")
        await u.commit()
    async with uow() as u:
        listed = {m["id"]: m for m in await u.outbox.list()}
        assert listed["m1"]["attempts"] == 1 and len(listed["m1"]["last_error"]) == 256
        assert listed["m2"]["attempts"] == 0 and listed["m2"]["last_error"] == "waiting"
        assert await u.outbox.redeliver("m1", NOW) is False  # only dead messages
        [m1] = await u.outbox.claim(NOW + timedelta(hours=1), lease, 10, ("sep12_callback",))
        await u.outbox.dead(m1, "HTTP 500")
        await u.commit()
    async with uow() as u:
        assert await u.outbox.depth() == {"dead": 1, "pending": 1}
        assert [m["id"] for m in await u.outbox.list(status="dead")] == ["m1"]
        assert [m["id"] for m in await u.outbox.list(kind="kyc_review")] == ["m2"]
        assert await u.outbox.redeliver("m1", NOW) is True
        [m1] = await u.outbox.claim(NOW, lease, 10, None)
        assert (m1.id, m1.attempts) == ("m1", 0)
        assert await u.outbox.sent(m1, NOW) is True
        await u.commit()
    async with uow(read_only=True) as u:
        assert await u.outbox.depth() == {"sent": 1, "pending": 1}


def test_rotation_knows_the_context_of_every_kind_of_sealed_value():
    from gateway.db.sealed_repository import SEALED
    from gateway.sep12_customer.rotation import CONTEXTS

    assert set(CONTEXTS) == set(SEALED)


async def test_sealed_values_are_counted_and_replaced_only_under_their_old_key(uow):
    account = Keypair.random().public_key
    async with uow() as u:
        await u.customers.create("c1", account, "none", "", NOW)
        await u.customers.put_fields(
            "c1",
            [
                FieldRow("first_name", "ACCEPTED", None, "old", b"1", None),
                FieldRow("last_name", "ACCEPTED", None, "new", b"2", None),
                FieldRow("photo_id_front", "ACCEPTED", None, None, None, "f1"),
            ],
            set(),
            NOW,
        )
        await u.customers.add_file(
            FileRow("f1", account, "none", "", "c1", "image/png", 1, "old", b"3", NOW, None)
        )
        assert await u.sealed.key_ids() == {"old": 2, "new": 1}
        assert await u.sealed.under(["old"], 10) == [
            ("field", ("c1", "first_name"), "old", b"1"),
            ("file", ("f1",), "old", b"3"),
        ]
        assert await u.sealed.replace("field", ("c1", "last_name"), "old", "x", b"9") is False
        assert await u.sealed.replace("field", ("c1", "first_name"), "old", "new", b"4")
        assert await u.sealed.replace("file", ("f1",), "old", "new", b"5") is True
        assert await u.sealed.key_ids() == {"new": 3}
        await u.commit()


# -- personal data at rest, on both databases ---------------------------------------------------

NEEDLES = ["Zephyrine", "Quillfeather", "zq@mailhost.example", "+14155550188", "Obsidianwick"]
SCAN = PNG + b"ZQ-PASSPORT-BYTES" * 3


async def test_no_personal_data_in_any_table_in_clear(build, engine):
    from gateway.sep12_customer.service import Upload

    service = build()
    who = session(Keypair.random().public_key)
    customer_id = await service.put(
        who,
        {
            "first_name": "Zephyrine",
            "last_name": "Quillfeather",
            "email_address": "zq@mailhost.example",
            "mobile_number": "+14155550188",
            "address": "1 Obsidianwick Lane",
        },
        {"photo_id_front": Upload("scan.png", "image/png", SCAN)},
    )
    await service.upload_file(who, Upload("doc.png", "image/png", SCAN))
    tables = await dump_tables(engine)
    assert len(tables["customer_fields"]) == 6 and len(tables["customer_files"]) == 2
    for name, rows in tables.items():
        for row in rows:
            for column, value in row.items():
                raw = value if isinstance(value, bytes) else str(value).encode()
                for needle in [*NEEDLES, "ZQ-PASSPORT-BYTES"]:
                    assert needle.encode() not in raw, (name, column, needle)
    data = await service.personal_data(customer_id)
    assert data["first_name"] == "Zephyrine" and data["mobile_number"] == "+14155550188"
    assert data["address"] == "1 Obsidianwick Lane"


async def test_a_sealed_value_does_not_open_in_another_row(build, uow):
    service = build()
    a = await service.put(session(Keypair.random().public_key), SENDER, {})
    b = await service.put(
        session(Keypair.random().public_key), {**SENDER, "first_name": "Grace"}, {}
    )
    async with uow() as u:
        fields_a = await u.customers.fields(a, with_values=True)
        stolen = fields_a["first_name"]
        # A's ciphertext pasted into B's row, and A's last name into A's first name.
        await u.connection.execute(
            update(customer_fields)
            .where(customer_fields.c.customer_id == b, customer_fields.c.name == "first_name")
            .values(key_id=stolen.key_id, value=stolen.value)
        )
        await u.commit()
    with pytest.raises(UnreadableData, match="failed authentication"):
        await service.personal_data(b)
    async with uow() as u:
        await u.connection.execute(
            update(customer_fields)
            .where(customer_fields.c.customer_id == a, customer_fields.c.name == "first_name")
            .values(value=fields_a["last_name"].value)
        )
        await u.commit()
    with pytest.raises(UnreadableData):
        await service.personal_data(a)


# -- key rotation -------------------------------------------------------------------------------


async def sealed_key_ids(engine) -> set[str]:
    tables = await dump_tables(engine)
    return {r["key_id"] for r in tables["customer_fields"] if r["key_id"]} | {
        r["key_id"] for r in tables["customer_files"]
    }


async def test_rotation_reseals_everything_under_the_new_key(build, engine, uow):
    from gateway.sep12_customer.service import Upload

    old = build(KEY_A)
    who = session(Keypair.random().public_key)
    ids = [
        await old.put(
            session(Keypair.random().public_key, str(i)), {**SENDER, "city": f"City {i}"}, {}
        )
        for i in range(1, 4)
    ]
    ids.append(await old.put(who, SENDER, {"photo_id_front": Upload("a", "image/png", PNG)}))
    upload = await old.upload_file(who, Upload("b", "image/jpeg", JPEG))
    assert await sealed_key_ids(engine) == {key_id(decode_key(KEY_A))}

    vault = Vault.from_texts(KEY_B, [KEY_A])
    report = await rotate(uow, vault, batch=2)
    assert report.resealed == 3 * 4 + 3 + 2 and report.left is None
    assert await sealed_key_ids(engine) == {key_id(decode_key(KEY_B))}
    assert (await rotate(uow, vault)).resealed == 0

    only_b = build(KEY_B)
    for i, customer_id in enumerate(ids[:3], start=1):
        assert await only_b.personal_data(customer_id) == {**SENDER, "city": f"City {i}"}
    assert await only_b.personal_data(ids[3]) == SENDER
    b = Vault.from_texts(KEY_B)
    async with uow(read_only=True) as u:
        front = (await u.customers.fields(ids[3]))["photo_id_front"]
        for file_id, content in ((front.file_id, PNG), (upload["file_id"], JPEG)):
            f = await u.customers.file(file_id, with_content=True)
            assert b.open(f.key_id, f.content, f"customer_file:{f.id}") == content
    # Data sealed only under A no longer opens with B alone.
    with pytest.raises(UnreadableData):
        Vault.from_texts(KEY_B).open(key_id(decode_key(KEY_A)), b"\x00" * 60, "x")


async def test_rotation_reports_values_under_keys_it_was_not_given(build, uow):
    await build(KEY_A).put(session(Keypair.random().public_key), SENDER, {})
    await build(KEY_C).put(session(Keypair.random().public_key), {"first_name": "Unknown"}, {})
    report = await rotate(uow, Vault.from_texts(KEY_B, [KEY_A]))
    assert report.resealed == 3
    assert report.left == {key_id(decode_key(KEY_C)): 1}


async def test_rotate_kyc_command(build, database_url, monkeypatch, capsys, engine):
    await build(KEY_A).put(session(Keypair.random().public_key), SENDER, {})
    for name, value in {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_SIGNING_SECRET": TEST_SIGNING_SECRET,
        "GATEWAY_JWT_SECRET": TEST_JWT_SECRET,
        "GATEWAY_KYC_KEY": KEY_B,
        "GATEWAY_KYC_OLD_KEYS": KEY_A,
    }.items():
        monkeypatch.setenv(name, value)
    config = str(REPO / "config/testnet.toml")
    argv = ["keys", "rotate-kyc", "--config", config, "--batch", "2"]
    assert await asyncio.to_thread(main, argv) == 0
    b_id = key_id(decode_key(KEY_B))
    assert capsys.readouterr().out == f"re-sealed 3 values under key {b_id}\n"
    assert await sealed_key_ids(engine) == {b_id}
    # A value under a key the command was not given: reported, exit 1.
    await build(KEY_C).put(session(Keypair.random().public_key), {"first_name": "X"}, {})
    assert await asyncio.to_thread(main, argv) == 1
    err = capsys.readouterr().err
    assert f"{key_id(decode_key(KEY_C))} (1)" in err and "GATEWAY_KYC_OLD_KEYS" in err


def command_runner(group: str, database_url: str, monkeypatch) -> Callable[..., int]:
    """`gateway <group> ...` against the test database, as an operator runs it."""
    for name, value in {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_SIGNING_SECRET": TEST_SIGNING_SECRET,
        "GATEWAY_JWT_SECRET": TEST_JWT_SECRET,
        "GATEWAY_KYC_KEY": KEY_A,
    }.items():
        monkeypatch.setenv(name, value)
    config = ["--config", str(REPO / "config/testnet.toml")]

    def run(*argv: str) -> int:
        return main([group, *argv, *config])

    return run


async def test_federation_commands(build, database_url, monkeypatch, capsys):
    customer_id = await build(KEY_A).put(session(Keypair.random().public_key), SENDER, {})
    run = command_runner("federation", database_url, monkeypatch)

    assert await asyncio.to_thread(run, "add", "Alice", customer_id) == 0
    added = capsys.readouterr().out
    assert added.startswith("alice*localhost:8000 -> G") and f"(customer {customer_id})" in added
    assert await asyncio.to_thread(run, "add", "alice", customer_id) == 1
    assert "alice*localhost:8000 is already taken" in capsys.readouterr().err
    assert await asyncio.to_thread(run, "add", "bad name", customer_id) == 1
    assert "name: may not contain whitespace" in capsys.readouterr().err
    assert await asyncio.to_thread(run, "list") == 0
    assert capsys.readouterr().out == added
    assert await asyncio.to_thread(run, "remove", "ALICE") == 0
    assert capsys.readouterr().out == "removed alice\n"
    assert await asyncio.to_thread(run, "remove", "alice") == 1


async def test_compliance_commands(build, database_url, monkeypatch, capsys, uow):
    customer_id = await build(KEY_A).put(session(Keypair.random().public_key), SENDER, {})
    async with uow() as u:
        await u.compliance.add(compliance_row(id="req-1", customer_id=customer_id, amount=1))
        await u.commit()
    run = command_runner("compliance", database_url, monkeypatch)

    assert await asyncio.to_thread(run, "list", "--status", "pending") == 0
    assert json.loads(capsys.readouterr().out)["id"] == "req-1"
    assert await asyncio.to_thread(run, "decide", "req-1", "--tx", "ok", "--operator", "ana") == 0
    assert capsys.readouterr().out == "compliance request req-1: tx ok, info ok\n"
    assert await asyncio.to_thread(run, "list", "--status", "pending") == 0
    assert capsys.readouterr().out == ""
    assert await asyncio.to_thread(run, "decide", "nope", "--tx", "ok", "--operator", "ana") == 1
    capsys.readouterr()
    assert await asyncio.to_thread(run, "allow", customer_id, "bank.test", "--operator", "ana") == 0
    assert capsys.readouterr().out == f"bank.test may receive the data of customer {customer_id}\n"
    async with uow(read_only=True) as u:
        assert await u.compliance.allowed(customer_id, "bank.test")
    assert await asyncio.to_thread(run, "sent") == 0


async def test_a_code_sent_before_a_key_rotation_still_verifies(build, make_settings):

    types = json.dumps(
        [
            {
                "name": "sep31-sender",
                "direction": "sender",
                "description": "Sender",
                "required": ["first_name", "mobile_number"],
                "verify": ["mobile_number"],
            }
        ]
    )
    notifier = FakeNotifier()
    before = build(KEY_A, notifier=notifier, GATEWAY_SEP12_TYPES=types)
    who = session(Keypair.random().public_key)
    await before.put(who, {"first_name": "Ada", "mobile_number": "+14155550123"}, {})
    code = notifier.sent[-1].code
    after = build(KEY_B, (KEY_A,), GATEWAY_SEP12_TYPES=types)
    await after.put(who, {"mobile_number_verification": code}, {})
    assert (await after.get(who, {}))["status"] == "ACCEPTED"


# -- concurrency --------------------------------------------------------------------------------


async def test_concurrent_puts_for_a_new_customer_make_one_customer(build, engine):
    service = build()
    who = session(Keypair.random().public_key, "7")
    ids = await asyncio.gather(*(service.put(who, {"first_name": "Ada"}, {}) for _ in range(8)))
    assert len(set(ids)) == 1
    tables = await dump_tables(engine)
    assert [r["id"] for r in tables["customers"]] == ids[:1]
    assert len(tables["customer_fields"]) == 1


async def test_concurrent_puts_of_the_same_new_field_both_succeed(build, engine, request):
    service = build()
    who = session(Keypair.random().public_key)
    customer_id = await service.put(who, {"first_name": "Ada"}, {})
    lock = "SELECT 1 FROM customers WHERE id = :id FOR UPDATE"
    async with queued_behind(engine, lock, {"id": customer_id}):
        puts = [
            asyncio.create_task(service.put(who, {"city": city}, {}))
            for city in ("London", "Paris")
        ]
        await until_waiting(engine, 2)
    assert await asyncio.gather(*puts, return_exceptions=True) == [customer_id, customer_id]
    assert (await service.personal_data(customer_id))["city"] in ("London", "Paris")


async def test_concurrent_puts_completing_the_data_queue_a_review(build, engine, uow, request):
    service = build(**PROVIDER)
    who = session(Keypair.random().public_key)
    customer_id = await service.put(who, {"first_name": "Ada"}, {})
    lock = "SELECT 1 FROM customers WHERE id = :id FOR UPDATE"
    async with queued_behind(engine, lock, {"id": customer_id}):
        puts = [
            asyncio.create_task(service.put(who, {"last_name": "Lovelace"}, {})),
            asyncio.create_task(service.put(who, {"email_address": "ada@example.com"}, {})),
        ]
        await until_waiting(engine, 2)
    results = await asyncio.gather(*puts, return_exceptions=True)
    assert results == [customer_id, customer_id]
    assert (await service.get(who, {}))["status"] == "PROCESSING"
    async with uow(read_only=True) as u:
        stored = (await u.customers.type_statuses(customer_id))["sep31-sender"]
        customer = await u.customers.get(customer_id)
        reviews = await u.outbox.list(kind="kyc_review")
    assert stored.status == "PROCESSING"
    assert stored.review_version == customer.version
    assert len(reviews) == 1


async def test_concurrent_decisions_leave_a_consistent_history(build, engine, uow, request):
    service = build(**PROVIDER)
    who = session(Keypair.random().public_key)
    customer_id = await service.put(who, SENDER, {})
    lock = "SELECT 1 FROM customer_fields WHERE customer_id = :id FOR UPDATE"
    async with queued_behind(engine, lock, {"id": customer_id}):
        decisions = [
            asyncio.create_task(
                service.decide(customer_id, "sep31-sender", "ACCEPTED", None, actor="provider")
            ),
            asyncio.create_task(
                service.decide(customer_id, "sep31-sender", "REJECTED", "fraud", actor="operator")
            ),
        ]
        await until_waiting(engine, 2)
    results = await asyncio.gather(*decisions, return_exceptions=True)
    assert sorted(map(str, results)) == ["ACCEPTED", "REJECTED"]
    async with uow(read_only=True) as u:
        events = [e for e in await u.customers.events(customer_id) if e["type"] == "sep31-sender"]
        stored = (await u.customers.type_statuses(customer_id))["sep31-sender"]
    chain = [(e["from_status"], e["to_status"]) for e in events]
    assert chain[0] == (None, "PROCESSING") and len(chain) == 3
    for (_, to), (frm, _) in itertools.pairwise(chain):
        assert frm == to, chain
    assert chain[-1][1] == stored.status == (await service.get(who, {}))["status"]


async def test_two_dispatchers_never_deliver_a_message_twice(uow):
    async with uow() as u:
        for i in range(30):
            await u.outbox.add(f"m{i:02d}", "sep12_callback", "https://w.test", b"{}", None, NOW)
        await u.commit()
    delivered: list[str] = []

    async def handler(row) -> None:
        delivered.append(row.id)
        await asyncio.sleep(0.005)

    clock = (NOW + timedelta(seconds=1)).timestamp
    dispatchers = [
        OutboxDispatcher(
            uow, {"sep12_callback": handler}, retry_seconds=(5,), clock=clock, concurrency=10
        )
        for _ in range(2)
    ]
    for _ in range(3):
        await asyncio.gather(*(d.deliver_once() for d in dispatchers))
    assert sorted(delivered) == [f"m{i:02d}" for i in range(30)]
    async with uow(read_only=True) as u:
        assert await u.outbox.depth() == {"sent": 30}


async def test_a_dispatcher_that_died_is_covered_when_its_lease_ends(uow):
    async with uow() as u:
        await u.outbox.add("m1", "sep12_callback", "https://w.test", b"{}", None, NOW)
        await u.commit()
    async with uow() as u:
        assert len(await u.outbox.claim(NOW, NOW + timedelta(seconds=120), 10, None)) == 1
        await u.commit()  # ... and the process died before delivering
    delivered: list[str] = []

    async def handler(row) -> None:
        delivered.append(row.id)

    at = [NOW + timedelta(seconds=60)]
    dispatcher = OutboxDispatcher(
        uow, {"sep12_callback": handler}, retry_seconds=(5,), clock=lambda: at[0].timestamp()
    )
    assert await dispatcher.deliver_once() == 0
    at[0] = NOW + timedelta(seconds=121)
    assert await dispatcher.deliver_once() == 1
    assert await dispatcher.deliver_once() == 0
    assert delivered == ["m1"]


# -- limits the database sets -------------------------------------------------------------------


async def test_overlong_decision_reasons_are_refused_not_a_database_error(build, engine, request):
    service = build()
    customer_id = await service.put(session(Keypair.random().public_key), SENDER, {})
    for kwargs in (
        {"status": "REJECTED", "reason": "r" * 600},
        {
            "status": "NEEDS_INFO",
            "reason": "x",
            "rejected_fields": {"email_address": "e" * 300},
        },
    ):
        try:
            await service.decide(customer_id, "sep31-sender", actor="operator", **kwargs)
        except (InvalidField, BadRequest):
            pass  # refused with a message naming the field is fine
        except DBAPIError as exc:
            pytest.fail(f"database error: {type(exc.orig).__name__}")


async def test_a_subjects_messages_of_one_kind_leave_in_order(uow):
    async with uow() as u:
        await u.outbox.add("a1", "sep12_callback", "https://w.test", b"1", "c1", NOW)
        await u.outbox.add("a2", "sep12_callback", "https://w.test", b"2", "c1", NOW)
        await u.outbox.add("r1", "kyc_review", "kyc-provider", b"{}", "c1", NOW)
        await u.outbox.add("b1", "sep12_callback", "https://w.test", b"1", "c2", NOW)
        await u.commit()
    lease = NOW + timedelta(seconds=120)
    async with uow() as u:
        claimed = sorted(r.id for r in await u.outbox.claim(NOW, lease, 10, None))
        assert claimed == ["a1", "b1", "r1"]  # a2 waits for a1; other kinds do not wait
        [a1] = [
            r for r in await u.outbox.claim(lease, lease, 10, ("sep12_callback",)) if r.id == "a1"
        ]
        assert await u.outbox.sent(a1, NOW)
        await u.commit()
    async with uow() as u:
        later = await u.outbox.claim(lease, lease + timedelta(seconds=120), 10, ("sep12_callback",))
        assert "a2" in [r.id for r in later]
        await u.commit()


async def test_a_registered_callback_url_takes_over_pending_messages(uow):
    async with uow() as u:
        await u.outbox.add("m1", "sep12_callback", "https://old.test/cb", b"{}", "c1", NOW)
        await u.outbox.retarget("c1", "sep12_callback", "https://new.test/cb")
        await u.commit()
    async with uow(read_only=True) as u:
        [m] = await u.outbox.list()
        assert m["target"] == "https://new.test/cb"


async def test_concurrent_wrong_codes_are_counted_one_by_one(build, engine, uow):
    notifier = FakeNotifier()
    service = build(notifier=notifier, **VERIFY_PHONE)
    who = session(Keypair.random().public_key)
    customer_id = await service.put(who, {"first_name": "Ada", "mobile_number": "+14155552671"}, {})
    right = notifier.sent[-1].code
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    lock = "SELECT 1 FROM customers WHERE id = :id FOR UPDATE"
    async with queued_behind(engine, lock, {"id": customer_id}):
        guesses = [
            asyncio.create_task(service.put(who, {"mobile_number_verification": wrong}, {}))
            for _ in range(12)
        ]
        await until_waiting(engine, 12)
    results = await asyncio.gather(*guesses, return_exceptions=True)
    assert all(isinstance(r, BadRequest) for r in results)
    async with uow(read_only=True) as u:
        pending = await u.customers.verification(customer_id, "mobile_number")
    assert pending.attempts == 5  # the limit, not 12: each guess waited for the previous one
    with pytest.raises(BadRequest, match="too many wrong codes"):
        await service.put(who, {"mobile_number_verification": right}, {})


async def test_a_code_does_not_verify_a_number_sent_after_it(build, engine):
    notifier = FakeNotifier()
    service = build(notifier=notifier, **VERIFY_PHONE)
    who = session(Keypair.random().public_key)
    customer_id = await service.put(who, {"first_name": "Ada", "mobile_number": "+14155552671"}, {})
    own_code = notifier.sent[-1].code
    await service.put(who, {"mobile_number": "+14155559999"}, {})  # another number: new code
    with pytest.raises(BadRequest, match="the code is wrong"):
        await service.put(who, {"mobile_number_verification": own_code}, {})
    body = await service.get(who, {"id": customer_id})
    assert body["provided_fields"]["mobile_number"]["status"] == "VERIFICATION_REQUIRED"


async def test_codes_for_a_field_are_rate_limited(build):
    notifier = FakeNotifier()
    service = build(notifier=notifier, **VERIFY_PHONE)
    who = session(Keypair.random().public_key)
    for i in range(5):
        await service.put(who, {"first_name": "Ada", "mobile_number": f"+1415555267{i}"}, {})
    with pytest.raises(RateLimited) as info:
        await service.put(who, {"mobile_number": "+14155552679"}, {})
    assert info.value.status == 429 and info.value.headers()["Retry-After"]
    assert len(notifier.sent) == 5


async def test_a_send_that_hangs_is_cut_off_and_retried_while_other_lanes_go_on(uow):
    async with uow() as u:
        await u.outbox.add("slow", "kyc_review", "kyc-provider", b"{}", "c1", NOW)
        await u.outbox.add("fast", "sep12_callback", "https://w.test/cb", b"{}", "c2", NOW)
        await u.commit()
    delivered: list[str] = []

    async def hang(row):
        await asyncio.sleep(3600)

    async def deliver(row):
        delivered.append(row.id)

    clock = NOW.timestamp
    reviews = OutboxDispatcher(
        uow, {"kyc_review": hang}, retry_seconds=(60,), timeout=0.05, clock=clock
    )
    callbacks = OutboxDispatcher(uow, {"sep12_callback": deliver}, retry_seconds=(60,), clock=clock)
    # The hung review does not hold up the callback lane, and is cut off at its deadline.
    assert await asyncio.wait_for(
        asyncio.gather(reviews.deliver_once(), callbacks.deliver_once()), 5
    ) == [1, 1]
    assert delivered == ["fast"]
    async with uow(read_only=True) as u:
        listed = {m["id"]: m for m in await u.outbox.list()}
    assert listed["fast"]["status"] == "sent"
    assert listed["slow"]["status"] == "pending" and listed["slow"]["attempts"] == 1
    assert listed["slow"]["last_error"] == "no answer within 0.05 s"
