"""Bulk disbursement CSVs: streamed, all problems at once, nothing from a file with any."""

from __future__ import annotations

import io

import pytest
from stellar_sdk import Keypair, MuxedAccount

from gateway.disbursement.csv_rows import check_rows, iter_rows, read_rows

DECIMALS = {"USDC": 7, "GWUSD": 2}
G = Keypair.random().public_key
M = MuxedAccount(G, 42).account_muxed
HEADER = "receiver_reference,amount,asset_code,destination,memo,external_payment_id\n"


def read(text: str, chunk: int = 7):
    data = text.encode()
    return read_rows((data[i : i + chunk] for i in range(0, len(data), chunk)), DECIMALS)


def test_good_rows_are_read_whatever_the_chunking():
    text = (
        "\ufeff"
        + HEADER
        + f"emp-1,10.5,GWUSD,{G},12345,pay-1\n"
        + f'"emp, 2",0.0000001,USDC,{M},,pay-2\n'
        + "\n"
        + "emp-3,1,USDC,maria@gmail.com*bank.example,hello world,\n"
    )
    for chunk in (1, 3, 7, 4096):
        reading = read(text, chunk)
        assert reading.ok, reading.problems
        assert [
            (r.line, r.receiver_reference, r.amount, r.memo_type, r.memo) for r in reading.rows
        ] == [
            (2, "emp-1", 105_000_000, "id", "12345"),
            (3, "emp, 2", 1, None, None),
            (5, "emp-3", 10_000_000, "text", "hello world"),
        ]
        assert [r.external_payment_id for r in reading.rows] == ["pay-1", "pay-2", None]


def test_columns_may_come_in_any_order_and_case_without_the_optional_ones():
    reading = read(f"Destination, AMOUNT ,asset_code,receiver_reference\n{G},5,USDC,r1\n")
    assert reading.ok and reading.rows[0].destination == G and reading.rows[0].memo is None


def test_every_bad_row_is_reported_at_once_and_nothing_is_kept():
    text = HEADER + "\n".join(
        [
            f"ok,1,USDC,{G},,a",
            f",1,USDC,{G},,b",
            f"r,0,USDC,{G},,c",
            f"r,1.005,GWUSD,{G},,d",
            f"r,1,EURT,{G},,e",
            "r,1,USDC,GABC,,f",
            "r,1,USDC,not-an-address,,g",
            f"r,1,USDC,{M},7,h",
            f"r,1,USDC,{G},99999999999999999999,i",
            f"r,1,USDC,{G},{'x' * 29},j",
            f"r,1,USDC,{G},,a",
            f"r,1,USDC,{G}",
            f"r,ten,USDC,{G},,k",
        ]
    )
    reading = read(text)
    assert reading.rows == []
    assert reading.problems == [
        "line 3: receiver_reference: must be 1 to 64 characters",
        "line 4: amount: must be greater than zero",
        "line 5: amount: must have at most 2 decimals",
        "line 6: asset_code: 'EURT' is not an asset paid out here",
        "line 7: destination: is not a valid G... account",
        "line 8: destination: must be a G... or M... account or a federation address name*domain",
        "line 9: memo: an M... destination carries its own id; leave the memo empty",
        "line 10: memo: an id memo must be between 1 and 2^64-1",
        "line 11: memo: a text memo is at most 28 bytes",
        "line 12: external_payment_id: repeats line 2",
        "line 13: row: has 4 cells, the header names 6",
        "line 14: amount: must be a positive decimal number with at most 7 decimals",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "line 1: header: the file is empty"),
        (
            "receiver_reference,amount,destination\n",
            "line 1: header: the column asset_code is missing",
        ),
        (HEADER.replace("memo", "note"), "line 1: header: 'note' is not a column"),
        (
            HEADER.replace("memo", "amount"),
            "line 1: header: the column amount appears more than once",
        ),
    ],
)
def test_bad_headers_are_reported(text, problem):
    reading = read(text)
    assert reading.rows == [] and reading.problems[0].startswith(problem)


def test_files_that_are_not_utf8_or_not_csv_are_refused():
    assert read_rows([b"\xff\xfe" + HEADER.encode("utf-16-le")], DECIMALS).problems == [
        "line ?: file: is not UTF-8 text"
    ]
    bad = read(HEADER + f'r,1,USDC,{G},"unclosed,x\n')
    assert bad.rows == [] and any("is not valid CSV" in p for p in bad.problems)


def test_a_hundred_thousand_rows_stream_through():
    lines = (f"emp-{i},{i % 900 + 1}.25,USDC,{G},{i + 1},pay-{i}\n" for i in range(100_000))
    data = io.BytesIO((HEADER + "".join(lines)).encode())
    reading = read_rows(iter(lambda: data.read(65_536), b""), DECIMALS)
    assert reading.ok and len(reading.rows) == 100_000
    assert reading.rows[-1].external_payment_id == "pay-99999" and reading.rows[-1].line == 100_001


def test_checking_keeps_no_rows_and_reading_again_gives_the_same_rows():
    text = HEADER + f"a,1.5,USDC,{G},7,p-1\nb,2,GWUSD,{M},,\nc,0.25,GWUSD,x*bank.example,,p-3\n"
    data = text.encode()

    def chunks():
        return (data[i : i + 5] for i in range(0, len(data), 5))

    checked = check_rows(chunks(), DECIMALS)
    assert checked.ok and checked.count == 3
    assert checked.totals == {"USDC": 15_000_000, "GWUSD": 22_500_000}
    assert checked.external_ids == {"p-1": 2, "p-3": 4}
    assert list(iter_rows(chunks(), DECIMALS)) == read_rows(chunks(), DECIMALS).rows
    bad = (HEADER + f"a,1,USDC,{G},,p-1\nb,1,USDC,{G},,p-1\n").encode()
    refused = check_rows([bad], DECIMALS)
    assert (refused.problems, refused.count) == (["line 3: external_payment_id: repeats line 2"], 0)
    with pytest.raises(ValueError, match="the file has problems"):
        list(iter_rows([(HEADER + "a,x,USDC,G,,\n").encode()], DECIMALS))
