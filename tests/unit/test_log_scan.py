"""The log scan of the test run (tests/log_scan.py): it finds every kind of secret and the
SEP-9 values the tests send, passes what logs legitimately hold, and fails a run with hits."""

from __future__ import annotations

import logging
import secrets
from types import SimpleNamespace

import jwt
import pytest
from stellar_sdk import Account, Asset, Keypair, MuxedAccount, Network, TransactionBuilder

from gateway.logs import JsonFormatter
from tests import log_scan
from tests.conftest import TEST_JWT_SECRET, TEST_KYC_KEY, TEST_SIGNING_SECRET
from tests.log_scan import SCAN, SECRETS, SEP9_VALUES, Hit, LeakScanner, LogScan, ScanningHandler


@pytest.fixture
def scanner() -> LeakScanner:
    return LeakScanner(SEP9_VALUES, SECRETS)


def labels(scanner: LeakScanner, text: str) -> list[str]:
    return [label for label, _ in scanner.scan(text)]


def as_logged(message: str) -> str:
    """``message`` as the gateway's JSON log line holds it."""
    return JsonFormatter().format(logging.makeLogRecord({"msg": message, "name": "gateway.x"}))


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("customer ada@example.com updated", "SEP-9 email_address"),
        ("sender: María Núñez", "SEP-9 first_name/last_name"),
        ("code sent to +14155552671", "SEP-9 mobile_number"),
        ("born 1815-12-10", "SEP-9 birth_date"),
        ("account=7654321 bank=021000021", "SEP-9 bank_account_number"),
        ("passport P9988776655", "SEP-9 id_number"),
        ("lives at 77 Obsidianwick Lane", "SEP-9 address"),
        (f"key {TEST_KYC_KEY}", "TEST_KYC_KEY"),
        (f"jwt key {TEST_JWT_SECRET}", "TEST_JWT_SECRET"),
        (f"signing with {TEST_SIGNING_SECRET}", "TEST_SIGNING_SECRET"),
        (f"seed={Keypair.random().secret}", "a Stellar secret seed"),
        (f"Authorization: Bearer gwop_{secrets.token_urlsafe(32)}", "an operator key (gwop_)"),
        (f"secret whsec_{secrets.token_urlsafe(24)}", "a webhook signing key (whsec_)"),
        (
            "token " + jwt.encode({"sub": Keypair.random().public_key}, "k" * 32, "HS256"),
            "a SEP-10 session token (JWT)",
        ),
    ],
)
def test_each_kind_of_secret_and_personal_data_is_found_in_a_log_line(scanner, text, label):
    assert label in labels(scanner, as_logged(text))
    assert label in labels(scanner, text)


def test_what_logs_legitimately_hold_is_no_hit(scanner):
    server = Keypair.random()
    tx = (
        TransactionBuilder(Account(server.public_key, 1), Network.TESTNET_NETWORK_PASSPHRASE, 100)
        .append_payment_op(Keypair.random().public_key, Asset.native(), "12345678")
        .set_timeout(30)
        .build()
    )
    tx.sign(server)
    not_a_seed = TEST_SIGNING_SECRET[:-1] + ("A" if TEST_SIGNING_SECRET[-1] != "A" else "B")
    clean = [
        f"payment from {server.public_key} to {MuxedAccount(server.public_key, 7).account_muxed}",
        f"submitted {tx.hash_hex()}: {tx.to_xdr()}",
        f"not a seed: {not_a_seed}",
        "amounts 12345678 and x1234567 and 21000021; 1 Main Street",
        "verification code for customer 0b7e8d4c-4f7b-4c1e-9d0a-5f0e2c1b3a4d by sms: 123456",
        "Augustana, Byronic, ada@example.community",
    ]
    for line in clean:
        assert labels(scanner, as_logged(line)) == [], line


def test_a_planted_record_is_caught_with_its_test_and_logger_and_kept_masked(pytestconfig):
    scan = LogScan(LeakScanner(SEP9_VALUES, SECRETS), current="the planting test")
    # A logger of its own that does not propagate: the session's scan never sees the plant.
    logger = logging.getLogger("tests.planted")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = ScanningHandler(scan)
    logger.addHandler(handler)
    email = "ada@" + "example.com"  # not whole in the traceback's source line
    try:
        try:
            raise ValueError(f"duplicate key (email)=({email})")
        except ValueError:
            logger.exception("could not store the customer")  # the value is in the traceback
        logger.info("nothing to see")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert scan.records == 2
    assert [(h.test, h.logger, h.label) for h in scan.hits] == [
        ("the planting test", "tests.planted", "SEP-9 email_address")
    ]
    assert "ada@example.com" not in scan.hits[0].excerpt
    assert "duplicate key (email)=([ad…])" in scan.hits[0].excerpt
    assert not any(h.logger == "tests.planted" for h in pytestconfig.stash[SCAN].hits)


class Reporter:
    def __init__(self, scan: LogScan):
        self.config = SimpleNamespace(stash={SCAN: scan})
        self.lines: list[str] = []

    def section(self, title: str, **_: object) -> None:
        self.lines.append(f"== {title}")

    def write_line(self, line: str, **_: object) -> None:
        self.lines.append(line)


def test_a_hit_fails_a_run_that_passed_and_is_reported_with_its_test_and_logger():
    hit = Hit("tests/e2e/test_x.py::test_y", "gateway.sep12", "SEP-9 email_address", "to [ad…]")
    scan = LogScan(LeakScanner(SEP9_VALUES, SECRETS), hits=[hit], records=7)
    session = SimpleNamespace(config=SimpleNamespace(stash={SCAN: scan}), exitstatus=0)
    log_scan.pytest_sessionfinish(session)  # type: ignore[arg-type]
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
    reporter = Reporter(scan)
    log_scan.pytest_terminal_summary(reporter)  # type: ignore[arg-type]
    assert "tests/e2e/test_x.py::test_y: gateway.sep12: SEP-9 email_address: to [ad…]" in (
        reporter.lines
    )
    assert reporter.lines[-1] == "log scan: 1 hit(s) in 7 records: the run fails"

    clean = LogScan(LeakScanner(SEP9_VALUES, SECRETS), records=7)
    session = SimpleNamespace(config=SimpleNamespace(stash={SCAN: clean}), exitstatus=0)
    log_scan.pytest_sessionfinish(session)  # type: ignore[arg-type]
    assert session.exitstatus == 0
