"""A pytest plugin that scans every log record of the test run for secrets and personal data.

Each record is formatted as the gateway writes its logs (gateway.logs.JsonFormatter, with the
traceback) and searched for: the test secrets of tests/conftest.py, any valid Stellar secret
seed, operator keys (``gwop_``), webhook signing keys (``whsec_``), SEP-10 session tokens
(JWTs), and the SEP-9 values the tests send (SEP9_VALUES). A hit is kept with the test that
was running and its logger; at the end of the session any hit fails the run and is listed
(values masked). Records are scanned as they come, so only hits are kept in memory, and any
subset of the tests is scanned alike.

Logging runs as in production (``configure_logging``): the root at INFO, the chatty client
libraries at WARNING. The scanning handler sits on the ``gateway`` logger, which nothing
reconfigures, and on the root for every other logger (put back before each test phase, since
the CLI under test replaces the root's handlers).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field

import pytest
from stellar_sdk import StrKey

from gateway.logs import JsonFormatter
from tests.conftest import TEST_JWT_SECRET, TEST_KYC_KEY, TEST_SIGNING_SECRET

# SEP-9 values the tests send (tests/fakes/sep31.py, the SEP-12, SEP-3 and customer store
# tests), by field. Only values distinctive enough that a hit is never a coincidence.
SEP9_VALUES: Mapping[str, tuple[str, ...]] = {
    "first_name/last_name": (
        "Lovelace",
        "Augusta",
        "Byron",
        "Zephyrine",
        "Quillfeather",
        "Allie",
        "Grater",
        "Badguy",
        "Núñez",
        "Mallory",
    ),
    "email_address": (
        "ada@example.com",
        "ada@example.org",
        "allie@example.com",
        "zephyrine.q@mailhost.example",
        "zq@mailhost.example",
    ),
    "mobile_number": (
        "+14155552671",
        "4155552671",
        "+1 415 555 2671",
        "+14155552679",
        "+14155559999",
        "+14155550123",
        "+14155550124",
        "+14155550177",
        "+14155550188",
        "+447700900123",
    ),
    "birth_date": ("1815-12-10", "1980-01-31"),
    "id_number": ("P1234567", "P9988776655", "P55667788"),
    "bank_account_number": ("7654321", "1234567"),
    "bank_number": ("021000021",),
    "address": (
        "1 Analytical Engine Row",
        "77 Obsidianwick Lane",
        "1 Obsidianwick Lane",
        "1 Main St",
    ),
}
SECRETS: Mapping[str, str] = {
    "TEST_SIGNING_SECRET": TEST_SIGNING_SECRET,
    "TEST_JWT_SECRET": TEST_JWT_SECRET,
    "TEST_KYC_KEY": TEST_KYC_KEY,
}
_SEED = re.compile(r"(?<![A-Z2-7])S[A-Z2-7]{55}(?![A-Z2-7])")
_PATTERNS: Mapping[str, re.Pattern[str]] = {
    "an operator key (gwop_)": re.compile(r"gwop_[A-Za-z0-9_-]{16,}"),
    "a webhook signing key (whsec_)": re.compile(r"whsec_[A-Za-z0-9_+/=-]{16,}"),
    "a SEP-10 session token (JWT)": re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{16,}"),
}


def _variants(value: str) -> set[str]:
    """The value as it may appear in a JSON log line (non-ASCII escaped) or raw."""
    return {value, json.dumps(value)[1:-1]}


class LeakScanner:
    """Finds secrets and known SEP-9 values in a text; ``scan`` names what it found."""

    def __init__(self, values: Mapping[str, Iterable[str]], secrets: Mapping[str, str]):
        self._labels: dict[str, str] = {}
        for name, found in values.items():
            for value in found:
                for variant in _variants(value):
                    self._labels[variant] = f"SEP-9 {name}"
        for name, secret in secrets.items():
            self._labels[secret] = name
        alternatives = "|".join(re.escape(v) for v in sorted(self._labels, key=len, reverse=True))
        # Not inside a longer word or number: "1234567" is no hit in "12345678".
        self._literal = re.compile(rf"(?<![\w@.+-])(?:{alternatives})(?![\w@-])")

    def scan(self, text: str) -> list[tuple[str, str]]:
        """(label, the matched text) of every hit."""
        hits = [(self._labels[m.group()], m.group()) for m in self._literal.finditer(text)]
        hits.extend(
            ("a Stellar secret seed", m.group())
            for m in _SEED.finditer(text)
            if StrKey.is_valid_ed25519_secret_seed(m.group())
        )
        for label, pattern in _PATTERNS.items():
            hits.extend((label, m.group()) for m in pattern.finditer(text))
        return hits


def mask(text: str, found: str) -> str:
    """``text`` around ``found`` with ``found`` itself hidden, for the report."""
    at = text.find(found)
    start = max(0, at - 60)
    hidden = found[:2] + "…" if len(found) > 6 else "…"
    return text[start:at] + f"[{hidden}]" + text[at + len(found) : at + len(found) + 60]


@dataclass
class Hit:
    test: str
    logger: str
    label: str
    excerpt: str


@dataclass
class LogScan:
    """The session's scan: what the handlers found, and where the run is."""

    scanner: LeakScanner
    hits: list[Hit] = field(default_factory=list)
    records: int = 0
    current: str = "(outside any test)"


class ScanningHandler(logging.Handler):
    """Formats each record like the gateway's logs and scans it. ``skip`` names a logger
    whose records another ScanningHandler of the same scan takes (no record is seen twice)."""

    def __init__(self, scan: LogScan, skip: str | None = None):
        super().__init__(logging.NOTSET)
        self.scan = scan
        self.skip = skip
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        if self.skip and (record.name == self.skip or record.name.startswith(self.skip + ".")):
            return
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.scan.records += 1
        for label, found in self.scan.scanner.scan(line):
            self.scan.hits.append(Hit(self.scan.current, record.name, label, mask(line, found)))


SCAN = pytest.StashKey[LogScan]()
_HANDLERS = pytest.StashKey[tuple[ScanningHandler, ScanningHandler]]()
# Quietened as `configure_logging` quietens them in production.
_QUIET = ("httpx", "httpcore", "aiosqlite", "asyncio", "alembic")


def pytest_configure(config: pytest.Config) -> None:
    scan = LogScan(LeakScanner(SEP9_VALUES, SECRETS))
    config.stash[SCAN] = scan
    gateway_handler = ScanningHandler(scan)
    root_handler = ScanningHandler(scan, skip="gateway")
    config.stash[_HANDLERS] = (gateway_handler, root_handler)
    logging.getLogger("gateway").addHandler(gateway_handler)
    root = logging.getLogger()
    root.addHandler(root_handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    for name in _QUIET:
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(logging.WARNING)


def _keep_attached(config: pytest.Config) -> None:
    gateway_handler, root_handler = config.stash[_HANDLERS]
    if root_handler not in logging.getLogger().handlers:
        logging.getLogger().addHandler(root_handler)
    if gateway_handler not in logging.getLogger("gateway").handlers:
        logging.getLogger("gateway").addHandler(gateway_handler)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    scan = item.config.stash[SCAN]
    scan.current = item.nodeid
    try:
        return (yield)
    finally:
        scan.current = "(between tests)"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _keep_attached(item.config)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    _keep_attached(item.config)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    _keep_attached(item.config)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Session fixtures are torn down by now (their records scanned): any hit fails the run."""
    if session.config.stash[SCAN].hits and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    scan = terminalreporter.config.stash[SCAN]
    if not scan.hits:
        terminalreporter.write_line(f"log scan: {scan.records} records, no secret or SEP-9 value")
        return
    terminalreporter.section("log scan: secrets or personal data in the logs", red=True)
    for hit in scan.hits[:50]:
        terminalreporter.write_line(f"{hit.test}: {hit.logger}: {hit.label}: {hit.excerpt}")
    if len(scan.hits) > 50:
        terminalreporter.write_line(f"... and {len(scan.hits) - 50} more")
    terminalreporter.write_line(
        f"log scan: {len(scan.hits)} hit(s) in {scan.records} records: the run fails", red=True
    )
