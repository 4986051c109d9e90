"""SEP-3 screening: the HTTP adapter (signed requests, cautious reading of answers) and the
settings that choose it."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest
import respx

from gateway.sep3_auth.sanctions import HttpSanctionsScreen, name_tokens
from gateway.settings import ConfigError, load_settings
from tests.conftest import REPO

URL = "https://screening.test/screen"
INFO = {"first_name": "Ann", "last_name": "Lee"}


def screen(router: respx.Router) -> HttpSanctionsScreen:
    client = httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler))
    return HttpSanctionsScreen(client, URL, "s3cret", clock=lambda: 1_700_000_000)


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, {"outcome": "ok"}, "ok"),
        (200, {"outcome": "denied", "reason": "listed"}, "denied"),
        (200, {"outcome": "pending"}, "pending"),
        (200, {"outcome": "maybe"}, "pending"),  # not an answer: held, never let through
        (200, ["ok"], "pending"),
        (500, {"outcome": "ok"}, "pending"),
    ],
)
@pytest.mark.asyncio
async def test_answers_are_read_cautiously(status, body, outcome):
    router = respx.Router()
    route = router.post(URL).respond(status, json=body)
    result = await screen(router).screen(INFO)
    assert result.outcome == outcome
    sent = route.calls.last.request
    assert json.loads(sent.content) == {"sender_info": INFO}
    t, v1 = (part.split("=", 1)[1] for part in sent.headers["x-gateway-signature"].split(","))
    expected = hmac.new(b"s3cret", f"{t}.".encode() + sent.content, hashlib.sha256).hexdigest()
    assert (t, v1) == ("1700000000", expected)


@pytest.mark.asyncio
async def test_an_unreachable_service_holds_and_no_info_is_an_error():
    router = respx.Router()
    router.post(URL).mock(side_effect=httpx.ConnectTimeout("slow"))
    assert (await screen(router).screen(INFO)).outcome == "pending"
    assert (await screen(router).screen(None)).outcome == "error"


def test_the_http_screen_needs_its_url_and_secret():
    base = {"GATEWAY_SEPS_SEP3": "true", "GATEWAY_SEP3_SCREENING": "http"}
    with pytest.raises(ConfigError) as info:
        load_settings(REPO / "config/testnet.toml", base)
    assert any(p.startswith("sep3.screening_url:") for p in info.value.problems)
    assert any(p.startswith("sep3.screening_secret:") for p in info.value.problems)
    ok = load_settings(
        REPO / "config/testnet.toml",
        {**base, "GATEWAY_SEP3_SCREENING_URL": URL, "GATEWAY_SEP3_SCREENING_SECRET": "x" * 32},
    )
    assert ok.sep3.screening_secret is not None


def test_names_are_compared_without_case_accents_punctuation_or_order():
    assert name_tokens("  Núñez-García, MARÍA ") == name_tokens("maria nunez garcia")


@pytest.mark.asyncio
async def test_the_gateway_screens_with_the_service_it_is_configured_for(tmp_path):
    from gateway.app import build_services
    from gateway.deps import build_deps
    from tests.conftest import TEST_JWT_SECRET, TEST_KYC_KEY, TEST_SIGNING_SECRET

    env = {
        "GATEWAY_SEPS_SEP3": "true",
        "GATEWAY_SEP3_SCREENING": "http",
        "GATEWAY_SEP3_SCREENING_URL": URL,
        "GATEWAY_SEP3_SCREENING_SECRET": "x" * 32,
        "GATEWAY_SIGNING_SECRET": TEST_SIGNING_SECRET,
        "GATEWAY_JWT_SECRET": TEST_JWT_SECRET,
        "GATEWAY_KYC_KEY": TEST_KYC_KEY,
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
    }
    settings = load_settings(REPO / "config/testnet.toml", env)
    deps = build_deps(settings)
    try:
        assert isinstance(build_services(settings, deps).compliance._screen, HttpSanctionsScreen)
    finally:
        await deps.aclose()
