"""Rate limits: per client IP and per caller on SEP-10 challenges, SEP-12 PUTs and the
operator API; 429 with Retry-After, in the SEP's JSON shape."""

from __future__ import annotations

import pytest
from stellar_sdk import Keypair

from gateway.rate_limits import Buckets

pytestmark = pytest.mark.asyncio


@pytest.fixture
def gateway_env() -> dict[str, str]:
    return {
        "GATEWAY_RATE_LIMITS_SEP10_CHALLENGE_PER_IP": "5",
        "GATEWAY_RATE_LIMITS_SEP10_CHALLENGE_PER_ACCOUNT": "2",
        "GATEWAY_RATE_LIMITS_OPS_PER_KEY": "3",
    }


async def test_challenges_are_limited_per_account_and_per_ip(gateway):
    one, two, three = (Keypair.random().public_key for _ in range(3))
    for _ in range(2):
        assert (await gateway.client.get(f"/auth?account={one}")).status_code == 200
    limited = await gateway.client.get(f"/auth?account={one}")
    assert limited.status_code == 429
    assert limited.json() == {"error": "Too many requests; try again later"}
    assert 1 <= int(limited.headers["retry-after"]) <= 30
    assert limited.headers["access-control-allow-origin"] == "*"
    for account in (two, two):  # another account still gets its own, within the IP's limit
        assert (await gateway.client.get(f"/auth?account={account}")).status_code == 200
    assert (await gateway.client.get(f"/auth?account={three}")).status_code == 429  # IP: 5


async def test_operator_keys_are_limited_each_on_their_own(gateway):
    operators = gateway.app.state.services.operators
    _, first = await operators.create("ana", "viewer", created_by="test")
    _, second = await operators.create("bea", "viewer", created_by="test")
    for _ in range(3):
        ok = await gateway.client.get("/ops/me", headers={"Authorization": f"Bearer {first}"})
        assert ok.status_code == 200
    refused = await gateway.client.get("/ops/me", headers={"Authorization": f"Bearer {first}"})
    assert refused.status_code == 429 and "retry-after" in refused.headers
    other = await gateway.client.get("/ops/me", headers={"Authorization": f"Bearer {second}"})
    assert other.status_code == 200
    # Guessing keys is limited too: every request with a bearer token counts against it.
    for _ in range(3):
        await gateway.client.get("/ops/me", headers={"Authorization": "Bearer gwop_guess"})
    guessed = await gateway.client.get("/ops/me", headers={"Authorization": "Bearer gwop_guess"})
    assert guessed.status_code == 429


async def test_a_bucket_refills_at_its_rate():
    now = [0.0]
    buckets = Buckets(clock=lambda: now[0])
    assert [buckets.take(("r", "ip", "a"), 60) for _ in range(60)] == [0.0] * 60
    assert buckets.take(("r", "ip", "a"), 60) == pytest.approx(1.0)
    now[0] += 1.0
    assert buckets.take(("r", "ip", "a"), 60) == 0.0
    assert buckets.take(("r", "ip", "b"), 60) == 0.0  # another key is not affected
