"""Reading a bulk disbursement's CSV: streamed, every bad row reported at once.

Columns (a header line names them, in any order, without regard to case):
``receiver_reference, amount, asset_code, destination`` and, optionally, ``memo`` and
``external_payment_id``. A destination is a Stellar account (``G...``), a muxed account
(``M...``) or a federation address (``name*domain``, resolved later through SEP-2). A memo
of digits is an id memo, anything else a text memo of at most 28 bytes. An external payment
id may appear once in a file (and once ever: the store checks earlier disbursements).

The result is either every row, or every problem as ``line N: field: reason`` (line 1 is the
header). Nothing is kept of a file with problems. ``read_rows`` keeps every row; a large file
is read twice instead, ``check_rows`` then ``iter_rows``, and its rows are never all in memory.
"""

from __future__ import annotations

import codecs
import csv
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from stellar_sdk import StrKey

from gateway.errors import InvalidField
from gateway.types import parse_amount, to_stroops

REQUIRED = ("receiver_reference", "amount", "asset_code", "destination")
OPTIONAL = ("memo", "external_payment_id")
MAX_TEXT = 64
MAX_ROWS = 1_000_000
MAX_PROBLEMS = 10_000  # beyond this, a count: a file that bad is not worth listing in full
UINT64_MAX = 2**64 - 1
KNOWN_ACCOUNTS = 4096  # valid G... destinations remembered while reading, not checked again


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    receiver_reference: str
    amount: int  # stroops
    asset_code: str
    destination: str  # G..., M... or name*domain (not resolved yet)
    memo_type: str | None  # id | text
    memo: str | None
    external_payment_id: str | None


@dataclass
class Reading:
    rows: list[Row]
    problems: list[str]
    more_problems: int = 0  # problems not listed (beyond MAX_PROBLEMS)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Checked:
    """A file read through without keeping its rows: its problems, or what storing it needs
    to know before its rows are read again (``iter_rows``)."""

    problems: list[str]
    more_problems: int = 0
    count: int = 0  # rows
    totals: dict[str, int] = field(default_factory=dict)  # asset code -> stroops
    external_ids: dict[str, int] = field(default_factory=dict)  # external payment id -> line

    @property
    def ok(self) -> bool:
        return not self.problems


class _Problems:
    def __init__(self) -> None:
        self.listed: list[str] = []
        self.more = 0

    def __call__(self, line: int, what: str, reason: str) -> None:
        if len(self.listed) < MAX_PROBLEMS:
            self.listed.append(f"line {line}: {what}: {reason}")
        else:
            self.more += 1


def _destination_problem(text: str) -> str | None:
    if text.startswith("G"):
        return None if StrKey.is_valid_ed25519_public_key(text) else "is not a valid G... account"
    if text.startswith("M"):
        return None if StrKey.is_valid_med25519_public_key(text) else "is not a valid M... account"
    name, sep, domain = text.rpartition("*")
    if sep and name and domain and "*" not in name and "." in domain and " " not in text:
        return None
    return "must be a G... or M... account or a federation address name*domain"


def _memo(text: str, destination: str) -> tuple[str | None, str | None, str | None]:
    """(memo type, memo, problem)."""
    if not text:
        return None, None, None
    if destination.startswith("M"):
        return None, None, "an M... destination carries its own id; leave the memo empty"
    if text.isascii() and text.isdigit():
        if not 0 < int(text) <= UINT64_MAX:
            return None, None, "an id memo must be between 1 and 2^64-1"
        return "id", str(int(text)), None
    if len(text.encode()) > 28:
        return None, None, "a text memo is at most 28 bytes"
    return "text", text, None


def read_rows(chunks: Iterable[bytes], decimals: Mapping[str, int]) -> Reading:
    """Read the CSV given as byte chunks (UTF-8, an optional BOM); ``decimals`` maps the
    asset codes that may be paid to their decimals. Every row is kept."""
    problems = _Problems()
    rows: list[Row] = []
    for row in _scan(chunks, decimals, problems, {}):
        if not problems.listed:
            rows.append(row)
    if problems.listed:
        return Reading([], problems.listed, problems.more)
    return Reading(rows, [])


def check_rows(chunks: Iterable[bytes], decimals: Mapping[str, int]) -> Checked:
    """Read the CSV as ``read_rows`` does, keeping of its rows only their count, their
    totals per asset and their external payment ids."""
    problems = _Problems()
    count = 0
    totals: dict[str, int] = {}
    external_ids: dict[str, int] = {}
    for row in _scan(chunks, decimals, problems, external_ids):
        count += 1
        totals[row.asset_code] = totals.get(row.asset_code, 0) + row.amount
    if problems.listed:
        return Checked(problems.listed, problems.more)
    return Checked([], 0, count, totals, external_ids)


def iter_rows(chunks: Iterable[bytes], decimals: Mapping[str, int]) -> Iterator[Row]:
    """The rows of a CSV that ``check_rows`` found without problems, one at a time (its
    external payment ids are not compared with each other again). ValueError if the file
    has problems after all."""
    problems = _Problems()
    for row in _scan(chunks, decimals, problems, None):
        if problems.listed:
            break
        yield row
    if problems.listed:
        raise ValueError(f"the file has problems: {problems.listed[0]}")


def _scan(
    chunks: Iterable[bytes],
    decimals: Mapping[str, int],
    problem: _Problems,
    seen_ids: dict[str, int] | None,
) -> Iterator[Row]:
    """The good rows, as they are read; every problem goes to ``problem``. ``seen_ids``
    collects the external payment ids with their lines (None: repeats are not looked for)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()

    def lines() -> Iterable[str]:
        pending = ""
        for chunk in chunks:
            pending += decoder.decode(chunk)
            *complete, pending = pending.split("\n")
            for text in complete:
                yield text + "\n"
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending

    try:
        reader = csv.reader(lines(), strict=True)
        header = next(reader, None)
        if header is None:
            problem(1, "header", "the file is empty")
            return
        columns = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED if c not in columns]
        unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
        repeated = {c for c in columns if columns.count(c) > 1}
        for c in missing:
            problem(1, "header", f"the column {c} is missing")
        for c in unknown:
            problem(
                1,
                "header",
                f"{c[:40]!r} is not a column (columns: {', '.join(REQUIRED + OPTIONAL)})",
            )
        for c in sorted(repeated):
            problem(1, "header", f"the column {c} appears more than once")
        if problem.listed:
            return
        at = {c: columns.index(c) for c in columns}
        accounts: set[str] = set()  # valid destinations seen, up to KNOWN_ACCOUNTS
        count = 0
        for record in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in record):
                continue  # blank lines are not rows
            count += 1
            if count > MAX_ROWS:
                problem(line, "file", f"has more than {MAX_ROWS} rows")
                break
            if len(record) != len(columns):
                problem(line, "row", f"has {len(record)} cells, the header names {len(columns)}")
                continue
            cells = {c: record[i].strip() for c, i in at.items()}
            row = _row(line, cells, decimals, problem, seen_ids, accounts)
            if row is not None:
                yield row
    except UnicodeDecodeError:
        problem.listed[:] = ["line ?: file: is not UTF-8 text"]
        problem.more = 0
    except csv.Error as exc:
        problem(reader.line_num, "file", f"is not valid CSV ({exc})")


def _row(
    line: int,
    cells: Mapping[str, str],
    decimals: Mapping[str, int],
    problem: Callable[[int, str, str], None],
    seen_ids: dict[str, int] | None,
    accounts: set[str],
) -> Row | None:
    ok = True
    reference = cells["receiver_reference"]
    if not reference or len(reference) > MAX_TEXT:
        problem(line, "receiver_reference", f"must be 1 to {MAX_TEXT} characters")
        ok = False
    code = cells["asset_code"]
    amount_stroops = 0
    if code not in decimals:
        problem(line, "asset_code", f"{code[:12]!r} is not an asset paid out here")
        ok = False
    else:
        try:
            amount_stroops = to_stroops(parse_amount(cells["amount"], "amount", decimals[code]))
        except InvalidField as exc:
            problem(line, "amount", exc.message.removeprefix("amount: "))
            ok = False
    destination = cells["destination"]
    if destination not in accounts:  # files pay the same accounts over and over
        reason = _destination_problem(destination)
        if reason:
            problem(line, "destination", reason)
            ok = False
        elif len(accounts) < KNOWN_ACCOUNTS and destination.startswith("G"):
            accounts.add(destination)
    memo_type, memo, memo_problem = _memo(cells.get("memo", ""), destination)
    if memo_problem:
        problem(line, "memo", memo_problem)
        ok = False
    external = cells.get("external_payment_id", "") or None
    if external is not None:
        if len(external) > MAX_TEXT:
            problem(line, "external_payment_id", f"must be at most {MAX_TEXT} characters")
            ok = False
        elif seen_ids is None:
            pass
        elif external in seen_ids:
            problem(line, "external_payment_id", f"repeats line {seen_ids[external]}")
            ok = False
        else:
            seen_ids[external] = line
    if not ok:
        return None
    # Files pay the same accounts and assets over and over: one copy of each string.
    return Row(
        line,
        reference,
        amount_stroops,
        sys.intern(code),
        sys.intern(destination),
        memo_type,
        memo,
        external,
    )
