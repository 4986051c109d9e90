"""Schemathesis over /openapi.json, on SQLite and PostgreSQL: every operation, called with
data that fits its schema and with data that does not, answers no 5xx, only statuses the
document lists, in the documented content type, with a body its schema accepts, and refuses
(4xx) what does not fit. Operator routes are called with an owner's key and /kyc and /sep31
with a SEP-10 session, so more than their refusals is exercised.

The app is served by uvicorn on this test's event loop (a real socket on 127.0.0.1) while
Hypothesis drives requests from a worker thread. Examples are bounded and derandomized: each
run sends the same requests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.errors import FailureGroup

from gateway.settings import Settings
from tests.e2e.conftest import Gateway
from tests.fakes.sep12 import running_gateway

pytestmark = pytest.mark.asyncio

EXAMPLES = 10  # per operation, of fitting and of not fitting data each
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
NO_RATE_LIMITS = {
    f"GATEWAY_RATE_LIMITS_{name}": "0"
    for name in (
        "SEP10_CHALLENGE_PER_IP",
        "SEP10_CHALLENGE_PER_ACCOUNT",
        "SEP3_PER_IP",
        "SEP12_PUT_PER_IP",
        "SEP12_PUT_PER_ACCOUNT",
        "OPS_PER_IP",
        "OPS_PER_KEY",
    )
}
# Lists whose every answer here is a refusal, and why.
NOTHING_TO_LIST = {
    "GET /federation": "no federation names are registered",
    "GET /ops/accounts": "no distribution account is configured",
}


@pytest.fixture
async def fuzzed(make_settings: Callable[..., Settings], engine: Any) -> AsyncIterator[Gateway]:
    settings = make_settings(GATEWAY_SEPS_SEP3="true", **NO_RATE_LIMITS)
    async with running_gateway(settings, engine) as gw:
        yield gw


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """``app`` served by uvicorn on this event loop, at the base URL yielded."""
    with socket.socket() as sock:
        # Inherited by accepted connections: without it every keep-alive request waits
        # ~40 ms for a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            # No log_level: uvicorn would set it on its loggers for the rest of the session.
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            ws="none",
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                assert not task.done(), "uvicorn did not start"
                await asyncio.sleep(0.01)
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            await task


def exercise(strategy: Any, base_url: str, session: requests.Session, seen: list[int]) -> None:
    """Call and check the cases of ``strategy``; the statuses answered go to ``seen``."""

    @settings(
        max_examples=EXAMPLES * 2,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        response = case.call(base_url=base_url, session=session)
        seen.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    check()


def fuzz(
    schema: Any,
    base_url: str,
    auth: Mapping[str, dict[str, str]],
    pinned: Mapping[str, dict[str, Any]],
) -> tuple[dict[str, str], dict[str, list[int]]]:
    """Every operation of ``schema``: (failures by operation, statuses seen by operation).
    ``auth``: headers by security scheme; ``pinned``: fixed parameters by operation."""
    failures: dict[str, str] = {}
    statuses: dict[str, list[int]] = defaultdict(list)
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            security = operation.definition.raw.get("security") or [{}]
            fixed = {
                "headers": auth.get(next(iter(security[0]), "")),
                **pinned.get(operation.label, {}),
            }
            strategy = st.one_of(
                operation.as_strategy(GenerationMode.POSITIVE, **fixed),
                operation.as_strategy(GenerationMode.NEGATIVE, **fixed),
            )
            try:
                exercise(strategy, base_url, session, statuses[operation.label])
            except (Exception, FailureGroup) as exc:
                failures[operation.label] = str(exc)
    return failures, dict(statuses)


async def test_every_operation_answers_within_its_documented_schema(fuzzed: Gateway) -> None:
    _, owner_key = await fuzzed.app.state.services.operators.create(
        "fuzz", "owner", created_by="test"
    )
    wallet = fuzzed.wallet()
    token = await wallet.token()
    document = (await fuzzed.client.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    auth = {
        "operatorKey": {"Authorization": f"Bearer {owner_key}"},
        "sep10": {"Authorization": f"Bearer {token}"},
    }
    # Parameters a random value would only ever see refused.
    pinned = {
        "GET /auth": {"query": {"account": wallet.account}},
        "DELETE /kyc/customer/{account}": {"path_parameters": {"account": wallet.account}},
    }
    async with served(fuzzed.app) as base_url:
        failures, statuses = await asyncio.to_thread(fuzz, schema, base_url, auth, pinned)

    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    operations = {
        f"{method.upper()} {path}": op
        for path, methods in document["paths"].items()
        for method, op in methods.items()
    }
    assert set(statuses) == set(operations)
    # The key and the session were accepted: each guarded operation answered more than 401/403.
    refused_only = [
        label
        for label, op in operations.items()
        if op["security"] and set(statuses[label]) <= {401, 403}
    ]
    assert refused_only == []
    # What fits the schema of a list is listed: each GET without path parameters answered 2xx.
    never_listed = [
        label
        for label in operations
        if label.startswith("GET ")
        and "{" not in label
        and label not in NOTHING_TO_LIST
        and not any(200 <= s < 300 for s in statuses[label])
    ]
    assert never_listed == []
