"""SEP-12 input that must be refused before anything is stored: oversized JSON, text that is
not text, personal data in the URL, and memos written in more than one way."""

from __future__ import annotations

import pytest

from gateway.http_input import MAX_JSON_BYTES
from tests.fakes.sep12 import Kyc, dump_tables, error_of, kyc_for

pytestmark = pytest.mark.asyncio

SENDER = {"first_name": "Ada", "last_name": "Lovelace", "email_address": "ada@example.com"}


async def customer_count(gateway) -> int:
    return len((await dump_tables(gateway.app.state.deps.engine))["customers"])


async def test_a_json_body_over_the_cap_is_refused_with_413_and_stores_nothing(gateway):
    kyc = await kyc_for(gateway)
    padding = "x" * (MAX_JSON_BYTES + 1)
    response = await gateway.client.put(
        "/kyc/customer",
        content=f'{{"first_name": "Ada", "notes": "{padding}"}}',
        headers={**kyc.headers, "Content-Type": "application/json"},
    )
    assert error_of(response, 413) == f"JSON bodies are at most {MAX_JSON_BYTES} bytes"
    assert await customer_count(gateway) == 0


async def test_a_lone_surrogate_is_not_text_and_answers_400(gateway):
    kyc = await kyc_for(gateway)
    response = await gateway.client.put(
        "/kyc/customer",
        content=b'{"first_name": "\\ud800", "last_name": "L", "email_address": "a@b.co"}',
        headers={**kyc.headers, "Content-Type": "application/json"},
    )
    assert error_of(response, 400) == "Request body is not valid JSON"
    # Form bodies are decoded by the server; a stray surrogate cannot arrive that way, but a
    # percent-encoded invalid UTF-8 sequence can, and it must not be stored either.
    response = await gateway.client.put(
        "/kyc/customer",
        content=b"first_name=%ED%A0%80&last_name=L&email_address=a%40b.co",
        headers={**kyc.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "first_name: must be valid UTF-8 text" in error_of(response, 400)
    assert await customer_count(gateway) == 0


async def test_personal_data_in_the_query_string_is_refused_without_echoing_it(gateway):
    kyc = await kyc_for(gateway)
    response = await gateway.client.put(
        "/kyc/customer",
        params={"type": "sep31-sender", "first_name": "Ada", "birth_date": "1815-12-10"},
        json={"last_name": "Lovelace", "email_address": "ada@example.com"},
        headers=kyc.headers,
    )
    error = error_of(response, 400)
    assert error == "send customer data in the body, not the URL: birth_date, first_name"
    assert "Ada" not in error and "1815" not in error
    assert await customer_count(gateway) == 0
    # Identifiers in the URL are fine.
    response = await gateway.client.put(
        "/kyc/customer", params={"type": "sep31-sender"}, json=SENDER, headers=kyc.headers
    )
    assert response.status_code == 202, response.text


async def test_unknown_field_names_are_listed_shortened_and_capped(gateway):
    kyc = await kyc_for(gateway)
    body = {f"{'z' * 100}{i:02d}": "v" for i in range(15)}
    error = error_of(await kyc.put({**SENDER, **body}), 400)
    assert error.startswith("not SEP-9 fields this server collects: " + "z" * 64 + ", ")
    assert error.endswith(" and 5 more")
    assert len(error) < 900


@pytest.mark.parametrize("written", ["0042", " 42 ", "+42"])
async def test_a_memo_token_accepts_its_own_memo_in_any_spelling(gateway, written):
    wallet = gateway.wallet()
    kyc = Kyc(gateway.client, await wallet.token(memo="42"))
    customer_id = await kyc.put_id(SENDER)
    if written == "+42":
        # Not a canonical uint64 spelling: refused as a different memo, never a new customer.
        response = await kyc.put({"memo": written, "last_name": "X"})
        assert error_of(response, 403) == (
            "memo: does not match the memo of the authenticated session"
        )
    else:
        assert await kyc.put_id({"memo": written, "last_name": "Byron"}) == customer_id
        assert (await kyc.status(memo=written))["id"] == customer_id
    response = await kyc.put({"memo": "43", "last_name": "X"})
    assert error_of(response, 403) == "memo: does not match the memo of the authenticated session"


async def test_a_memo_less_token_stores_memo_ids_in_one_canonical_form(gateway):
    kyc = await kyc_for(gateway)
    first = await kyc.put_id({"memo": "007", **SENDER})
    assert await kyc.put_id({"memo": "7", "last_name": "Byron"}) == first
    assert (await kyc.status(memo="0007"))["id"] == first
    rows = (await dump_tables(gateway.app.state.deps.engine))["customers"]
    assert [r["memo"] for r in rows] == ["7"]
