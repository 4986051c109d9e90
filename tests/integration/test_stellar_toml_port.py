from __future__ import annotations

import asyncio

import httpx
import pytest
import respx

from gateway.errors import RemoteTomlError
from gateway.outbound.guarded_network import GuardedTransport, is_public_address
from gateway.outbound.stellar_toml import HttpxStellarTomls, normalize_domain, signing_key_of

KEY = "GAIVTVXOXBVQ7WHN2ONFTF4HKQ6KFYSSQPP6EYCPMIDZNCPWKCU3HQVZ"
TOML = f'SIGNING_KEY = "{KEY}"\n'


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def port(router: respx.Router, clock=None, **kw) -> HttpxStellarTomls:
    client = httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler))
    return HttpxStellarTomls(client, clock=clock or Clock(), **kw)


async def test_fetches_https_toml_and_reads_signing_key():
    router = respx.Router()
    route = router.get("https://wallet.test/.well-known/stellar.toml").respond(200, text=TOML)
    toml = await port(router).fetch("Wallet.Test")
    assert signing_key_of(toml, "wallet.test") == KEY
    assert route.called


async def test_caches_answers_then_refetches_after_ttl():
    router = respx.Router()
    route = router.get("https://wallet.test/.well-known/stellar.toml").respond(200, text=TOML)
    clock = Clock()
    p = port(router, clock, cache_seconds=60)
    await p.fetch("wallet.test")
    await p.fetch("wallet.test")
    assert route.call_count == 1
    clock.now += 61
    await p.fetch("wallet.test")
    assert route.call_count == 2


async def test_failures_are_cached_briefly():
    router = respx.Router()
    route = router.get("https://down.test/.well-known/stellar.toml").respond(503)
    clock = Clock()
    p = port(router, clock, negative_cache_seconds=5)
    for _ in range(2):
        with pytest.raises(RemoteTomlError) as info:
            await p.fetch("down.test")
        # The caller learns nothing about the host beyond "could not be fetched".
        assert info.value.message == "stellar.toml of down.test could not be fetched"
    assert route.call_count == 1
    clock.now += 6
    with pytest.raises(RemoteTomlError):
        await p.fetch("down.test")
    assert route.call_count == 2


async def test_concurrent_fetches_share_one_request():
    router = respx.Router()
    gate = asyncio.Event()

    async def slow(request):
        await gate.wait()
        return httpx.Response(200, text=TOML)

    route = router.get("https://wallet.test/.well-known/stellar.toml").mock(side_effect=slow)
    p = port(router)
    tasks = [asyncio.create_task(p.fetch("wallet.test")) for _ in range(5)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert route.call_count == 1 and all(r == results[0] for r in results)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(301, headers={"Location": "http://10.0.0.1/"}), "HTTP 301"),
        (httpx.Response(404), "HTTP 404"),
        (httpx.Response(200, text="x" * 2000), "larger than 1000 bytes"),
        (httpx.Response(200, text="NOT = TOML = ["), "not valid TOML"),
        (httpx.Response(200, content=b"\xff\xfe"), "not valid TOML"),
    ],
)
async def test_unusable_answers(response, message):
    router = respx.Router()
    router.get("https://wallet.test/.well-known/stellar.toml").mock(return_value=response)
    with pytest.raises(RemoteTomlError, match=message):
        await port(router, max_bytes=1000).fetch("wallet.test")


async def test_transport_errors_become_remote_toml_errors():
    router = respx.Router()
    router.get("https://wallet.test/.well-known/stellar.toml").mock(
        side_effect=httpx.ConnectTimeout("t")
    )
    with pytest.raises(RemoteTomlError, match="could not be fetched"):
        await port(router).fetch("wallet.test")


async def test_http_only_for_allow_listed_hosts():
    router = respx.Router()
    router.get("http://localhost:8001/.well-known/stellar.toml").respond(200, text=TOML)
    p = port(router, insecure_hosts=["localhost"])
    assert signing_key_of(await p.fetch("localhost:8001"), "localhost") == KEY


@pytest.mark.parametrize("domain", ["127.0.0.1", "10.0.0.8:443", "[::1]"])
async def test_ip_literals_are_refused(domain):
    with pytest.raises(RemoteTomlError):
        await port(respx.Router()).fetch(domain)


@pytest.mark.parametrize(
    "bad", ["https://wallet.test", "wallet.test/path", "wal let.test", "", "a" * 300, "x.test?q"]
)
def test_domains_must_be_host_names(bad):
    with pytest.raises(RemoteTomlError):
        normalize_domain(bad)


def test_signing_key_must_be_a_public_key():
    with pytest.raises(RemoteTomlError, match="no valid SIGNING_KEY"):
        signing_key_of(
            {"SIGNING_KEY": "SBGWSG6BTNCKCOB3DIFBGCVMUPQFYPA2G4O34RMTB343OYPXU5DJDVMN"}, "w"
        )


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("169.254.169.254", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("fd00::1", False),
        ("2606:4700::1111", True),
        ("0.0.0.0", False),
        ("100.64.0.1", False),
    ],
)
def test_public_address_classification(address, public):
    assert is_public_address(address) is public


async def test_guarded_transport_refuses_hosts_resolving_to_private_addresses():
    async def resolver(host, port):
        return ["127.0.0.1"]

    async with httpx.AsyncClient(transport=GuardedTransport(resolver=resolver)) as client:
        with pytest.raises(httpx.ConnectError, match="non-public address"):
            await client.get("https://internal.test/.well-known/stellar.toml")


async def test_guarded_transport_connects_to_the_vetted_address(monkeypatch):
    seen = []

    async def resolver(host, port):
        return ["93.184.216.34"]

    transport = GuardedTransport(resolver=resolver)
    inner = transport._pool._network_backend._inner

    async def fake_connect(host, port, **kwargs):
        seen.append(host)
        raise OSError("stop here")

    monkeypatch.setattr(inner, "connect_tcp", fake_connect)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(OSError):
            await client.get("https://public.test/")
    assert seen == ["93.184.216.34"]


async def test_guarded_transport_lets_allow_listed_hosts_through(monkeypatch):
    seen = []
    transport = GuardedTransport(allowed_hosts=["localhost"])
    inner = transport._pool._network_backend._inner

    async def fake_connect(host, port, **kwargs):
        seen.append(host)
        raise OSError("stop here")

    monkeypatch.setattr(inner, "connect_tcp", fake_connect)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(OSError):
            await client.get("http://localhost:1/")
    assert seen == ["localhost"]


async def test_a_slow_host_is_cut_off_at_the_deadline():
    router = respx.Router()

    async def trickle(request):
        await asyncio.sleep(5)
        return httpx.Response(200, text=TOML)

    router.get("https://slow.test/.well-known/stellar.toml").mock(side_effect=trickle)
    started = asyncio.get_running_loop().time()
    with pytest.raises(RemoteTomlError, match="deadline passed"):
        await port(router, timeout_seconds=0.2).fetch("slow.test")
    assert asyncio.get_running_loop().time() - started < 1


async def test_compressed_bodies_are_refused_before_unpacking():
    import gzip

    router = respx.Router()
    bomb = gzip.compress(b"A = 1\n" * 1_000_000)
    router.get("https://zip.test/.well-known/stellar.toml").respond(
        200, content=bomb, headers={"Content-Encoding": "gzip"}
    )
    with pytest.raises(RemoteTomlError, match="compressed body"):
        await port(router).fetch("zip.test")
    assert router.calls.last.request.headers["accept-encoding"] == "identity"


async def test_non_default_ports_are_refused_for_real_hosts():
    router = respx.Router()
    with pytest.raises(RemoteTomlError, match="default https port"):
        await port(router).fetch("wallet.test:8443")
    assert not router.calls


async def test_the_cache_is_bounded(monkeypatch):
    from gateway.outbound import stellar_toml

    monkeypatch.setattr(stellar_toml, "MAX_CACHED_DOMAINS", 10)
    router = respx.Router()
    router.get(url__regex=r"https://.*\.test/.well-known/stellar.toml").respond(404)
    p = port(router)
    for i in range(50):
        with pytest.raises(RemoteTomlError):
            await p.fetch(f"d{i}.test")
    assert len(p._cache) == 10
    assert all(isinstance(v, str) for _, v in p._cache.values())  # messages, not exceptions


async def test_guarded_transport_tries_the_next_vetted_address(monkeypatch):
    import httpcore

    seen = []

    async def resolver(host, port):
        return ["93.184.216.34", "93.184.216.35"]

    transport = GuardedTransport(resolver=resolver)
    inner = transport._pool._network_backend._inner

    async def fake_connect(host, port, **kwargs):
        seen.append(host)
        if host.endswith(".34"):
            raise httpcore.ConnectError("refused")
        raise OSError("stop here")

    monkeypatch.setattr(inner, "connect_tcp", fake_connect)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(OSError, match="stop here"):
            await client.get("https://public.test/")
    assert seen == ["93.184.216.34", "93.184.216.35"]
