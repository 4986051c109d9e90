"""Webhook signatures as a receiver checks them (with the README's own receiver), and the
event patterns an endpoint may subscribe with."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.db.event_repository import EventRow
from gateway.errors import InvalidField
from gateway.ops.webhooks import check_patterns, event_body, matches, sign

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "whsec_" + "k" * 43


def readme_receiver() -> Any:
    """The ``verify`` function of the README's Webhooks section, as a receiver copies it."""
    section = README.read_text(encoding="utf-8").split("## Webhooks", 1)[1]
    [code] = [c for c in re.findall(r"```python\n(.*?)```", section, re.S) if "def verify" in c]
    assert len(code.strip().splitlines()) <= 15  # short enough to copy
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    return namespace["verify"]


def body(event_id: int = 7, status: str = "started") -> bytes:
    at = datetime(2026, 11, 21, 12, tzinfo=UTC)
    data = {"disbursement_id": "d-1", "status": status}
    return event_body(EventRow(event_id, f"disbursement.{status}", "d-1", data, at))


def test_a_receiver_accepts_the_signature_and_drops_a_repeat_by_event_id():
    verify, seen = readme_receiver(), set()
    now = int(time.time())
    header = sign(SECRET, now, body())
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    event = verify(SECRET, header, body(), seen)
    assert event["id"] == "evt_7" and event["type"] == "disbursement.started"
    assert event["data"] == {"disbursement_id": "d-1", "status": "started"}
    assert event["created_at"] == "2026-11-21T12:00:00+00:00"
    assert verify(SECRET, sign(SECRET, now + 1, body()), body(), seen) is None  # a redelivery


def test_a_changed_body_timestamp_or_secret_is_refused():
    verify = readme_receiver()
    now = int(time.time())
    header = sign(SECRET, now, body())
    mac = header.split("v1=")[1]
    refused = [
        (SECRET, header, body(status="completed")),  # the body changed
        (SECRET, f"t={now + 1},v1={mac}", body()),  # the timestamp changed
        ("whsec_other", header, body()),  # another endpoint's secret
        (SECRET, sign(SECRET, now - 3600, body()), body()),  # signed an hour ago: a replay
        (SECRET, f"t={now}", body()),  # no signature at all
    ]
    for secret, bad_header, bad_body in refused:
        with pytest.raises(ValueError, match="bad or stale signature"):
            verify(secret, bad_header, bad_body, set())


def test_the_body_is_compact_json_with_the_event_id_type_and_time():
    raw = body(42)
    assert json.loads(raw) == {
        "id": "evt_42",
        "type": "disbursement.started",
        "created_at": "2026-11-21T12:00:00+00:00",
        "data": {"disbursement_id": "d-1", "status": "started"},
    }
    assert b" " not in raw


def test_patterns_match_exact_types_and_whole_families():
    patterns = check_patterns("transfer.*, payout.failed,customer.status_changed")
    assert patterns == ("transfer.*", "payout.failed", "customer.status_changed")
    assert matches(patterns, "transfer.completed") and matches(patterns, "transfer.error")
    assert matches(patterns, "payout.failed") and not matches(patterns, "payout.succeeded")
    assert matches(patterns, "customer.status_changed")
    assert not matches(patterns, "disbursement.started")
    assert check_patterns(["compliance.*", "compliance.*"]) == ("compliance.*",)


@pytest.mark.parametrize(
    "events",
    [
        "",
        [],
        None,
        ["*"],
        ["transfer"],
        ["transfer.nonsense"],
        ["payout.*.*"],
        ["account.*"],
        ["disbursement.draft"],
        [1],
        {"transfer.*": True},
        ["transfer.*"] * 40,
    ],
)
def test_patterns_outside_the_event_families_are_refused(events):
    with pytest.raises(InvalidField) as refused:
        check_patterns(events)
    assert refused.value.field == "events"
