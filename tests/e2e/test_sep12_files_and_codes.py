"""SEP-12 files, verification codes, deletion and personal data at rest, through the app (on
SQLite; tests/integration/test_customer_store.py repeats the storage checks on PostgreSQL)."""

from __future__ import annotations

import gc
import json
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.app import background_steps
from gateway.db.tables import (
    customer_callbacks,
    customer_events,
    customer_fields,
    customer_files,
    customer_type_status,
    customer_verifications,
    customers,
)
from gateway.personal_data import Vault
from tests.fakes.sep12 import (
    JPEG,
    PDF,
    PNG,
    Kyc,
    ManualClock,
    dump_tables,
    error_of,
    kyc_for,
    log_everything,
    record_text,
    running_gateway,
)

pytestmark = pytest.mark.asyncio

NOT_FOUND = "customer with `id` not found"
SENDER = {"first_name": "Ada", "last_name": "Lovelace", "email_address": "ada@example.com"}
LARGE = {
    **SENDER,
    "address": "1 Analytical Engine Row",
    "address_country_code": "GBR",
    "birth_date": "1815-12-10",
    "id_type": "passport",
    "id_number": "P1234567",
    "id_country_code": "GBR",
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def gateway(make_settings, sqlite_engine, gateway_env, clock):
    """The e2e gateway, on a clock the tests move."""
    async with running_gateway(make_settings(**gateway_env), sqlite_engine, clock=clock) as gw:
        yield gw


def service(gateway):
    return gateway.app.state.services.customers


async def rows_of(gateway, table, **where):
    async with gateway.app.state.deps.engine.connect() as conn:
        query = select(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        return [dict(r._mapping) for r in await conn.execute(query)]


async def version_of(gateway, customer_id: str) -> int:
    async with gateway.app.state.deps.uow(read_only=True) as uow:
        row = await uow.customers.get(customer_id)
    assert row is not None
    return row.version


# -- POST /customer/files and GET /customer/files ----------------------------------------------
async def test_uploaded_file_is_described_and_listed(gateway, clock):
    kyc = await kyc_for(gateway)
    response = await kyc.upload(PNG, "image/png")
    assert response.status_code == 200, response.text
    body = response.json()
    expires = datetime.fromtimestamp(clock() + 86400, UTC)
    assert body == {
        "file_id": body["file_id"],
        "content_type": "image/png",
        "size": len(PNG),
        "expires_at": body["expires_at"],
        "customer_id": None,
    }
    assert body["expires_at"].endswith("Z")
    delta = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")) - expires
    assert abs(delta.total_seconds()) <= 2
    listed = await kyc.files(file_id=body["file_id"])
    assert listed.status_code == 200
    assert listed.json() == {"files": [body]}


async def test_file_id_is_attached_with_a_file_id_field(gateway):
    kyc = await kyc_for(gateway)
    file_id = (await kyc.upload(JPEG, "image/jpeg")).json()["file_id"]
    customer_id = await kyc.put_id(
        {**LARGE, "type": "sep31-large-sender", "photo_id_front_file_id": file_id}
    )
    body = await kyc.status(type="sep31-large-sender")
    assert body["status"] == "ACCEPTED"
    assert body["provided_fields"]["photo_id_front"]["status"] == "ACCEPTED"
    listed = (await kyc.files(customer_id=customer_id)).json()
    assert listed == {
        "files": [
            {
                "file_id": file_id,
                "content_type": "image/jpeg",
                "size": len(JPEG),
                "expires_at": None,
                "customer_id": customer_id,
            }
        ]
    }
    assert (await kyc.files(file_id=file_id)).json() == listed


async def test_file_listing_needs_exactly_one_parameter_and_is_empty_when_nothing_matches(
    gateway,
):
    kyc = await kyc_for(gateway)
    assert error_of(await kyc.files(), 400) == "send exactly one of file_id and customer_id"
    assert error_of(await kyc.files(file_id="a", customer_id="b"), 400) == (
        "send exactly one of file_id and customer_id"
    )
    for params in ({"file_id": "nope"}, {"customer_id": "nope"}):
        response = await kyc.files(**params)
        assert response.status_code == 200 and response.json() == {"files": []}
    customer_id = await kyc.put_id(SENDER)
    assert (await kyc.files(customer_id=customer_id)).json() == {"files": []}


async def test_another_accounts_file_is_neither_listed_nor_attachable(gateway):
    owner = await kyc_for(gateway)
    file_id = (await owner.upload(PDF, "application/pdf")).json()["file_id"]
    thief = await kyc_for(gateway)
    assert (await thief.files(file_id=file_id)).json() == {"files": []}
    response = await thief.put({**SENDER, "photo_id_front_file_id": file_id})
    assert error_of(response, 400) == "photo_id_front_file_id: no such file of yours"
    assert "id" not in await thief.status()
    # Still the owner's, unattached.
    assert (await owner.files(file_id=file_id)).json()["files"][0]["customer_id"] is None


async def test_files_of_one_memo_are_not_the_other_memos(gateway):
    wallet = gateway.wallet()
    one = Kyc(gateway.client, await wallet.token(memo="1"))
    two = Kyc(gateway.client, await wallet.token(memo="2"))
    plain = Kyc(gateway.client, await wallet.token())
    file_id = (await one.upload(PNG)).json()["file_id"]
    assert (await two.files(file_id=file_id)).json() == {"files": []}
    assert len((await plain.files(file_id=file_id)).json()["files"]) == 1
    response = await two.put({**SENDER, "photo_id_front_file_id": file_id})
    assert error_of(response, 400) == "photo_id_front_file_id: no such file of yours"
    customer_id = await one.put_id({**SENDER, "photo_id_front_file_id": file_id})
    assert (await two.files(customer_id=customer_id)).json() == {"files": []}
    assert len((await plain.files(customer_id=customer_id)).json()["files"]) == 1


@pytest.mark.parametrize(
    ("content", "declared", "error"),
    [
        (b"GIF89a" + b"\x00" * 40, "image/gif", "file: must be a JPEG, PNG or PDF file"),
        (
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            "image/png",
            "file: must be a JPEG, PNG or PDF file",
        ),
        (b"", "image/png", "file: the file is empty"),
        (PNG, "image/jpeg", "file: content is image/png, not the declared image/jpeg"),
        (PDF, "image/png", "file: content is application/pdf, not the declared image/png"),
        (JPEG, "application/pdf", "file: content is image/jpeg, not the declared application/pdf"),
    ],
    ids=["gif", "svg", "empty", "png-as-jpeg", "pdf-as-png", "jpeg-as-pdf"],
)
async def test_upload_content_is_checked_by_its_bytes(gateway, content, declared, error):
    kyc = await kyc_for(gateway)
    assert error_of(await kyc.upload(content, declared), 400) == error
    field = error.replace("file:", "photo_id_front:", 1)
    response = await kyc.put(data=SENDER, files={"photo_id_front": ("x", content, declared)})
    assert error_of(response, 400) == field
    assert "id" not in await kyc.status()


@pytest.mark.parametrize(
    ("content", "declared"),
    [
        (JPEG, "image/jpg"),
        (JPEG, "application/octet-stream"),
        (PNG, "image/png; name=scan"),
        (PDF, "application/pdf"),
    ],
)
async def test_loosely_declared_types_are_accepted_and_the_sniffed_type_kept(
    gateway, content, declared
):
    kyc = await kyc_for(gateway)
    response = await kyc.upload(content, declared)
    assert response.status_code == 200, response.text
    assert response.json()["content_type"] in ("image/jpeg", "image/png", "application/pdf")
    assert response.json()["content_type"] != "application/octet-stream"


async def test_upload_needs_exactly_one_part_named_file(gateway):
    kyc = await kyc_for(gateway)
    response = await gateway.client.post(
        "/kyc/customer/files",
        files={"file": ("a", PNG, "image/png"), "other": ("b", PNG, "image/png")},
        headers=kyc.headers,
    )
    assert error_of(response, 400) == "send one multipart part named 'file'"
    response = await gateway.client.post(
        "/kyc/customer/files", files={"photo": ("a", PNG, "image/png")}, headers=kyc.headers
    )
    assert error_of(response, 400) == "send one multipart part named 'file'"
    response = await gateway.client.post(
        "/kyc/customer/files", json={"file": "aGVsbG8="}, headers=kyc.headers
    )
    assert error_of(response, 400) == "file: is required (one multipart part named 'file')"


async def test_file_parts_must_be_binary_sep9_fields(gateway):
    kyc = await kyc_for(gateway)
    response = await kyc.put(
        data={"last_name": "Lovelace"},
        files={"selfie": ("a", PNG, "image/png"), "first_name": ("b", PNG, "image/png")},
    )
    assert error_of(response, 400) == "not SEP-9 fields this server collects: first_name, selfie"


async def test_a_new_file_replaces_and_erases_the_old_one(gateway):
    kyc = await kyc_for(gateway)
    response = await kyc.put(data=SENDER, files={"photo_id_front": ("a", PNG, "image/png")})
    customer_id = response.json()["id"]
    (old,) = (await kyc.files(customer_id=customer_id)).json()["files"]
    response = await kyc.put(data={}, files={"photo_id_front": ("b", JPEG, "image/jpeg")})
    assert response.json() == {"id": customer_id}
    (new,) = (await kyc.files(customer_id=customer_id)).json()["files"]
    assert new["file_id"] != old["file_id"] and new["content_type"] == "image/jpeg"
    assert await rows_of(gateway, customer_files, id=old["file_id"]) == []


async def test_one_file_cannot_be_two_fields(gateway):
    kyc = await kyc_for(gateway)
    file_id = (await kyc.upload(PNG)).json()["file_id"]
    response = await kyc.put(
        {**SENDER, "photo_id_front_file_id": file_id, "photo_id_back_file_id": file_id}
    )
    assert error_of(response, 400).endswith("_file_id: that file is already another field's")
    customer_id = await kyc.put_id({**SENDER, "photo_id_front_file_id": file_id})
    response = await kyc.put({"photo_id_back_file_id": file_id})
    assert error_of(response, 400) == (
        "photo_id_back_file_id: that file is already another field's"
    )
    # Replacing the other field leaves the first one's file alone.
    await kyc.put(data={}, files={"photo_id_back": ("b", JPEG, "image/jpeg")})
    async with gateway.app.state.deps.uow(read_only=True) as uow:
        front = (await uow.customers.fields(customer_id))["photo_id_front"]
    assert front.file_id == file_id
    assert await rows_of(gateway, customer_files, id=file_id) != []


async def test_sending_the_same_file_id_again_changes_nothing(gateway):
    kyc = await kyc_for(gateway)
    file_id = (await kyc.upload(PNG)).json()["file_id"]
    customer_id = await kyc.put_id({**SENDER, "photo_id_front_file_id": file_id})
    before = await version_of(gateway, customer_id)
    assert await kyc.put_id({**SENDER, "photo_id_front_file_id": file_id}) == customer_id
    assert await version_of(gateway, customer_id) == before


async def test_unattached_files_expire_and_are_swept(gateway, clock):
    kyc = await kyc_for(gateway)
    stale = (await kyc.upload(PNG)).json()["file_id"]
    kept = (await kyc.upload(JPEG, "image/jpeg")).json()["file_id"]
    customer_id = await kyc.put_id({**SENDER, "photo_id_front_file_id": kept})
    deps, services = gateway.app.state.deps, gateway.app.state.services
    steps = {name: step for name, step, _ in background_steps(gateway.settings, deps, services)}
    clock.advance(86400 - 60)
    await steps["sweep-files"]()
    assert len(await rows_of(gateway, customer_files, id=stale)) == 1
    clock.advance(120)
    await steps["sweep-files"]()
    assert await rows_of(gateway, customer_files, id=stale) == []
    assert len(await rows_of(gateway, customer_files, id=kept)) == 1
    clock.offset = 0  # tokens are checked on the same clock
    assert (await kyc.files(file_id=stale)).json() == {"files": []}
    assert [f["file_id"] for f in (await kyc.files(customer_id=customer_id)).json()["files"]] == [
        kept
    ]
    response = await kyc.put({"photo_id_back_file_id": stale})
    assert error_of(response, 400) == "photo_id_back_file_id: no such file of yours"


async def test_uploaded_files_are_closed(gateway):
    kyc = await kyc_for(gateway)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert (await kyc.upload(PNG)).status_code == 200
        response = await kyc.put(data=SENDER, files={"photo_id_front": ("a", PNG, "image/png")})
        assert response.status_code == 202
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


class TestSizeLimits:
    @pytest.fixture
    def gateway_env(self):
        return {"GATEWAY_SEP12_MAX_FILE_BYTES": "2048"}

    async def test_files_over_the_cap_answer_413(self, gateway):
        kyc = await kyc_for(gateway)
        at_cap = PNG + b"\x00" * (2048 - len(PNG))
        response = await kyc.upload(at_cap)
        assert response.status_code == 200 and response.json()["size"] == 2048
        assert error_of(await kyc.upload(at_cap + b"\x00"), 413) == (
            "file: files may be at most 2048 bytes"
        )
        response = await kyc.put(
            data=SENDER, files={"photo_id_front": ("a", at_cap + b"\x00", "image/png")}
        )
        assert error_of(response, 413) == "photo_id_front: files may be at most 2048 bytes"
        assert "id" not in await kyc.status()

    async def test_bodies_over_the_kyc_limit_answer_413_before_parsing(self, gateway):
        kyc = await kyc_for(gateway)
        response = await gateway.client.put(
            "/kyc/customer",
            content=b"x" * (1_048_576 + 1),
            headers={**kyc.headers, "Content-Type": "application/json"},
        )
        assert error_of(response, 413) == "Request body is too large"


# -- verification codes -------------------------------------------------------------------------

VERIFY_TYPES = [
    {
        "name": "sep31-sender",
        "direction": "sender",
        "description": "Sender who confirms a phone number",
        "required": ["first_name", "last_name", "mobile_number"],
        "optional": ["email_address"],
        "verify": ["mobile_number", "email_address"],
    },
    {
        "name": "sep31-receiver",
        "direction": "receiver",
        "description": "Receiver",
        "required": ["first_name", "last_name"],
    },
]
PHONE = "+14155550123"


class TestVerificationCodes:
    @pytest.fixture
    def gateway_env(self):
        return {
            "GATEWAY_SEP12_TYPES": json.dumps(VERIFY_TYPES),
            "GATEWAY_SEP12_VERIFICATION_MAX_ATTEMPTS": "3",
        }

    async def start(self, gateway, **extra: str) -> tuple[Kyc, str, str]:
        kyc = await kyc_for(gateway)
        customer_id = await kyc.put_id(
            {"first_name": "Ada", "last_name": "Lovelace", "mobile_number": PHONE, **extra}
        )
        sent = gateway.notifier.sent[-1]
        return kyc, customer_id, sent.code

    async def pending(self, gateway, customer_id):
        return await rows_of(gateway, customer_verifications, customer_id=customer_id)

    async def test_a_code_is_sent_and_the_field_awaits_it(self, gateway):
        kyc, customer_id, code = await self.start(gateway)
        [sent] = gateway.notifier.sent
        assert (sent.channel, sent.destination, sent.customer_id) == ("sms", PHONE, customer_id)
        assert len(code) == 6 and code.isdigit()
        body = await kyc.status()
        assert body["status"] == "NEEDS_INFO"
        assert body["fields"] == {
            "mobile_number": {
                "type": "string",
                "description": "Mobile phone number in E.164 format",
            },
            "email_address": {"type": "string", "description": "Email address", "optional": True},
        }
        assert body["provided_fields"]["mobile_number"]["status"] == "VERIFICATION_REQUIRED"
        assert body["provided_fields"]["first_name"]["status"] == "ACCEPTED"
        # Stored as a keyed hash, never as the code.
        [row] = await self.pending(gateway, customer_id)
        assert row["attempts"] == 0 and len(row["code_digest"]) == 64
        assert code not in row["code_digest"]
        dump = repr(await dump_tables(gateway.app.state.deps.engine))
        assert PHONE not in dump

    async def test_the_right_code_accepts_the_field(self, gateway):
        kyc, customer_id, code = await self.start(gateway)
        assert await kyc.put_id({"mobile_number_verification": code}) == customer_id
        body = await kyc.status()
        assert body["status"] == "ACCEPTED"
        assert body["provided_fields"]["mobile_number"]["status"] == "ACCEPTED"
        assert await self.pending(gateway, customer_id) == []
        # The code is spent.
        error = error_of(await kyc.put({"mobile_number_verification": code}), 400)
        assert error == (
            "mobile_number_verification: no code is pending or it expired; "
            "send mobile_number again for a new one"
        )

    @pytest.mark.parametrize("endpoint", ["put", "verification"])
    async def test_verifying_a_field_keeps_its_value(self, gateway, endpoint):
        kyc, customer_id, code = await self.start(gateway)
        if endpoint == "put":
            await kyc.put_id({"mobile_number_verification": code})
        else:
            await kyc.verification({"id": customer_id, "mobile_number_verification": code})
        assert (await kyc.status())["status"] == "ACCEPTED"
        assert await service(gateway).personal_data(customer_id) == {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "mobile_number": PHONE,
        }

    async def test_the_deprecated_verification_endpoint(self, gateway):
        kyc, customer_id, code = await self.start(gateway)
        response = await kyc.verification({"id": customer_id, "mobile_number_verification": code})
        assert response.status_code == 200
        assert response.json() == await kyc.status()
        assert response.json()["status"] == "ACCEPTED"
        assert error_of(await kyc.verification({"mobile_number_verification": code}), 400) == (
            "id: is required"
        )
        assert error_of(await kyc.verification({"id": customer_id}), 400) == (
            "send one or more <field>_verification codes"
        )
        other = await kyc_for(gateway)
        response = await other.verification(
            {"id": customer_id, "mobile_number_verification": "000000"}
        )
        assert error_of(response, 404) == NOT_FOUND

    async def test_a_wrong_code_is_counted_though_the_request_changes_nothing(self, gateway):
        kyc, customer_id, code = await self.start(gateway)
        wrong = "000000" if code != "000000" else "111111"
        version = await version_of(gateway, customer_id)
        response = await kyc.put({"mobile_number_verification": wrong, "first_name": "Augusta"})
        assert error_of(response, 400) == "mobile_number_verification: the code is wrong"
        assert (await self.pending(gateway, customer_id))[0]["attempts"] == 1
        assert (await service(gateway).personal_data(customer_id))["first_name"] == "Ada"
        assert await version_of(gateway, customer_id) == version
        assert (await kyc.status())["status"] == "NEEDS_INFO"

    async def test_after_the_allowed_wrong_codes_even_the_right_one_is_refused(self, gateway):
        kyc, customer_id, code = await self.start(gateway)
        wrong = "000000" if code != "000000" else "111111"
        for attempt in range(1, 4):
            response = await kyc.put({"mobile_number_verification": wrong})
            assert error_of(response, 400) == "mobile_number_verification: the code is wrong"
            assert (await self.pending(gateway, customer_id))[0]["attempts"] == attempt
        response = await kyc.put({"mobile_number_verification": code})
        assert error_of(response, 400) == (
            "mobile_number_verification: too many wrong codes; send mobile_number again for a "
            "new one"
        )
        assert (await kyc.status())["provided_fields"]["mobile_number"]["status"] == (
            "VERIFICATION_REQUIRED"
        )

    async def test_an_expired_code_is_refused(self, gateway, clock):
        kyc, _, code = await self.start(gateway)
        clock.advance(600 + 1)
        response = await kyc.put({"mobile_number_verification": code})
        assert error_of(response, 400) == (
            "mobile_number_verification: no code is pending or it expired; "
            "send mobile_number again for a new one"
        )
        assert (await kyc.status())["status"] == "NEEDS_INFO"

    async def test_a_new_number_gets_a_new_code_and_the_old_code_dies(self, gateway):
        kyc, customer_id, old_code = await self.start(gateway)
        await kyc.put_id({"mobile_number": "+14155550124"})
        new = gateway.notifier.sent[-1]
        assert new.destination == "+14155550124" and len(gateway.notifier.sent) == 2
        if old_code != new.code:
            response = await kyc.put({"mobile_number_verification": old_code})
            assert error_of(response, 400) == "mobile_number_verification: the code is wrong"
        assert await kyc.put_id({"mobile_number_verification": new.code}) == customer_id
        assert (await kyc.status())["status"] == "ACCEPTED"

    async def test_sending_the_same_number_again_gets_a_new_code(self, gateway, clock):
        kyc, customer_id, _ = await self.start(gateway)
        clock.advance(601)
        await kyc.put_id({"mobile_number": PHONE})
        assert len(gateway.notifier.sent) == 2
        new = gateway.notifier.sent[-1].code
        assert await kyc.put_id({"mobile_number_verification": new}) == customer_id
        assert (await kyc.status())["status"] == "ACCEPTED"

    async def test_email_codes_go_by_email(self, gateway):
        kyc, customer_id, _ = await self.start(gateway, email_address="ada@example.com")
        channels = {s.channel: s for s in gateway.notifier.sent}
        assert set(channels) == {"sms", "email"} and len(gateway.notifier.sent) == 2
        assert channels["email"].destination == "ada@example.com"
        assert channels["email"].customer_id == customer_id
        assert (await kyc.status())["provided_fields"]["email_address"]["status"] == (
            "VERIFICATION_REQUIRED"
        )
        response = await kyc.put(
            {
                "mobile_number_verification": channels["sms"].code,
                "email_address_verification": channels["email"].code,
            }
        )
        assert response.status_code == 202
        assert (await kyc.status())["status"] == "ACCEPTED"

    async def test_codes_need_a_customer_and_a_verifiable_field(self, gateway):
        kyc = await kyc_for(gateway)
        assert error_of(await kyc.put({"mobile_number_verification": "123456"}), 404) == NOT_FOUND
        await kyc.put_id({"first_name": "Ada"})
        assert error_of(await kyc.put({"mobile_number_verification": ""}), 400) == (
            "mobile_number_verification: must be the code that was sent"
        )
        assert error_of(await kyc.put({"last_name_verification": "1"}), 400) == (
            "not SEP-9 fields this server collects: last_name_verification"
        )

    async def test_a_notifier_failure_keeps_the_field_waiting_and_logs_no_personal_data(
        self, gateway, caplog, monkeypatch
    ):
        async def down(*_args):
            raise RuntimeError("sms gateway down")

        monkeypatch.setattr(gateway.notifier, "send_code", down)
        kyc = await kyc_for(gateway)
        log_everything(caplog)
        customer_id = await kyc.put_id(
            {"first_name": "Ada", "last_name": "Lovelace", "mobile_number": PHONE}
        )
        body = await kyc.status()
        assert body["provided_fields"]["mobile_number"]["status"] == "VERIFICATION_REQUIRED"
        warnings_logged = [r for r in caplog.records if r.name == "gateway.sep12"]
        assert [r.getMessage() for r in warnings_logged] == [
            f"could not send the mobile_number code for customer {customer_id}: RuntimeError"
        ]
        assert warnings_logged[0].exc_info is None  # a provider's message may hold the number
        for record in caplog.records:
            assert PHONE not in record_text(record)

    async def test_codes_and_numbers_never_reach_the_logs(self, gateway, caplog):
        log_everything(caplog)
        kyc, _, code = await self.start(gateway)
        await kyc.put({"mobile_number_verification": "999999" if code != "999999" else "1"})
        await kyc.put_id({"mobile_number_verification": code})
        assert caplog.records  # the app did log (e.g. the database driver at DEBUG)
        for record in caplog.records:
            text = record_text(record)
            assert code not in text and PHONE not in text

    # -- deletion (with a pending code, files and a callback in place) -------------------------
    async def test_delete_erases_everything_and_records_the_deletion(self, gateway):
        wallet = gateway.wallet()
        kyc = Kyc(gateway.client, await wallet.token())
        response = await kyc.put(
            data={"first_name": "Ada", "last_name": "Lovelace", "mobile_number": PHONE},
            files={"photo_id_front": ("a", PNG, "image/png")},
        )
        customer_id = response.json()["id"]
        assert (await kyc.callback({"url": "https://wallet.test/kyc"})).status_code == 200
        unattached = (await kyc.upload(PDF, "application/pdf")).json()["file_id"]
        tables = (
            customer_fields,
            customer_files,
            customer_verifications,
            customer_callbacks,
            customer_type_status,
        )
        for table in tables:
            assert await rows_of(gateway, table, customer_id=customer_id), table.name
        # Another customer of the same account (memo 3) is not touched.
        sibling = await kyc.put_id({"memo": "3", "first_name": "Sib", "last_name": "Ling"})

        response = await kyc.delete(wallet.account)
        assert response.status_code == 200 and response.json() == {}

        for table in tables:
            assert await rows_of(gateway, table, customer_id=customer_id) == [], table.name
        assert await rows_of(gateway, customers, id=customer_id) == []
        assert await rows_of(gateway, customer_files, id=unattached) == []
        events = await rows_of(gateway, customer_events, customer_id=customer_id)
        deleted = events[-1]
        assert (deleted["type"], deleted["to_status"], deleted["actor"], deleted["reason"]) == (
            None,
            "DELETED",
            wallet.account,
            "DELETE /customer",
        )
        assert error_of(await kyc.get(id=customer_id), 404) == NOT_FOUND
        assert "id" not in await kyc.status()
        assert (await kyc.files(customer_id=customer_id)).json() == {"files": []}
        assert await service(gateway).personal_data(customer_id) == {}
        new_id = await kyc.put_id({"first_name": "Ada"})
        assert new_id not in (customer_id, sibling)
        assert (await kyc.status(memo="3"))["id"] == sibling
        assert await service(gateway).personal_data(sibling) == {
            "first_name": "Sib",
            "last_name": "Ling",
        }

    async def test_delete_answers_404_when_nothing_is_stored_and_403_for_others(self, gateway):
        wallet = gateway.wallet()
        kyc = Kyc(gateway.client, await wallet.token())
        assert error_of(await kyc.delete(wallet.account), 404) == (
            "no customer is stored for this account"
        )
        await kyc.put_id({"first_name": "Ada"})
        other = gateway.wallet().account
        assert error_of(await kyc.delete(other), 403) == (
            "account: does not match the authenticated account"
        )
        assert "id" in await kyc.status()

    async def test_delete_of_shared_accounts_takes_the_memo_from_the_body(self, gateway):
        wallet = gateway.wallet()
        plain = Kyc(gateway.client, await wallet.token())
        five = await plain.put_id({"memo": "5", "first_name": "Five"})
        six = await plain.put_id({"memo": "6", "first_name": "Six"})
        response = await plain.delete(wallet.account, {"memo": "5"})
        assert response.status_code == 200
        assert error_of(await plain.get(id=five), 404) == NOT_FOUND
        assert (await plain.status(id=six))["id"] == six
        # A memo token deletes its own customer only; form bodies work too.
        memo_six = Kyc(gateway.client, await wallet.token(memo="6"))
        assert error_of(await memo_six.delete(wallet.account, {"memo": "7"}), 403) == (
            "memo: does not match the memo of the authenticated session"
        )
        response = await gateway.client.request(
            "DELETE",
            f"/kyc/customer/{wallet.account}",
            content=b"memo=6",
            headers={**memo_six.headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200
        assert error_of(await plain.get(id=six), 404) == NOT_FOUND

    async def test_delete_with_a_muxed_token_uses_its_m_address(self, gateway):
        wallet = gateway.wallet()
        muxed = wallet.muxed(77)
        mux = Kyc(gateway.client, await wallet.token(account=muxed))
        customer_id = await mux.put_id({"first_name": "Mux"})
        assert error_of(await mux.delete(wallet.muxed(78)), 403) == (
            "account: does not match the authenticated account"
        )
        assert (await mux.delete(muxed)).status_code == 200
        assert await rows_of(gateway, customers, id=customer_id) == []


# -- personal data at rest ----------------------------------------------------------------------

FIRST, LAST = "Zephyrine", "Quillfeather"
EMAIL = "zephyrine.quillfeather@mailhost.example"
MOBILE = "+14155550199"
ADDRESS = "77 Obsidianwick Lane"
SCAN = PNG + b"ZEPHYRINE-PASSPORT-SCAN-0001" * 4
DOCUMENT = PDF + b"QUILLFEATHER-BANK-STATEMENT-0002" * 4
TEXT_NEEDLES = [FIRST, LAST, EMAIL, MOBILE, ADDRESS, "P9988776655"]
BYTE_NEEDLES = [b"ZEPHYRINE-PASSPORT-SCAN", b"QUILLFEATHER-BANK-STATEMENT"]


def plaintexts_in(blob: bytes) -> list[str]:
    low = blob.lower()
    found = [n for n in TEXT_NEEDLES if n.lower().encode() in low]
    found += [n.decode() for n in BYTE_NEEDLES if n.lower() in low]
    return found


async def test_no_personal_data_in_the_database_in_clear(gateway, sqlite_database):
    kyc = await kyc_for(gateway)
    response = await kyc.put(
        data={
            "first_name": FIRST,
            "last_name": LAST,
            "email_address": EMAIL,
            "mobile_number": MOBILE,
            "address": ADDRESS,
            "id_number": "P9988776655",
        },
        files={"photo_id_front": ("scan.png", SCAN, "image/png")},
    )
    customer_id = response.json()["id"]
    upload = await kyc.upload(DOCUMENT, "application/pdf")
    await kyc.put_id({"photo_proof_residence_file_id": upload.json()["file_id"]})
    await kyc.callback({"url": "https://wallet.test/cb"})
    await service(gateway).decide(
        customer_id,
        "sep31-sender",
        "NEEDS_INFO",
        "check",
        actor="operator:test",
        rejected_fields={"address": "needs a flat number"},
    )

    tables = await dump_tables(gateway.app.state.deps.engine)
    assert tables["customer_fields"] and tables["customer_files"] and tables["outbox"]
    for name, rows in tables.items():
        for row in rows:
            for column, value in row.items():
                raw = value if isinstance(value, bytes) else str(value).encode()
                assert plaintexts_in(raw) == [], (name, column)
    path = Path(sqlite_database.removeprefix("sqlite+aiosqlite:///"))
    files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    assert path in files
    for p in files:
        assert plaintexts_in(p.read_bytes()) == [], p.name

    # ... while the service still reads them back.
    data = await service(gateway).personal_data(customer_id)
    assert (data["first_name"], data["last_name"], data["email_address"]) == (FIRST, LAST, EMAIL)
    assert (data["mobile_number"], data["address"]) == (MOBILE, ADDRESS)
    async with gateway.app.state.deps.uow(read_only=True) as uow:
        fields = await uow.customers.fields(customer_id)
        scan = await uow.customers.file(fields["photo_id_front"].file_id, with_content=True)
    vault = Vault.from_texts(gateway.settings.kyc.key.reveal())
    assert vault.open(scan.key_id, scan.content, f"customer_file:{scan.id}") == SCAN
