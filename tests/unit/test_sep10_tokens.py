from __future__ import annotations

import jwt
import pytest

from gateway.errors import AuthenticationFailed
from gateway.sep10 import SessionTokens
from gateway.types import ClientIdentity

G = "GAIVTVXOXBVQ7WHN2ONFTF4HKQ6KFYSSQPP6EYCPMIDZNCPWKCU3HQVZ"
SECRET = "s" * 64
ISS = "https://anchor.test/auth"


class Clock:
    def __init__(self, now: float = 1_800_000_000):
        self.now = now

    def __call__(self) -> float:
        return self.now


def tokens(clock=None, secret=SECRET, issuer=ISS, network="testnet"):
    return SessionTokens(
        secret, issuer=issuer, network=network, lifetime=3600, clock=clock or Clock()
    )


def test_claims_of_an_issued_token():
    clock = Clock()
    t = tokens(clock).issue(
        ClientIdentity(G, memo="42"),
        jti="ab" * 32,
        client_domain="wallet.test",
        home_domain="anchor.test",
    )
    claims = jwt.decode(
        t, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert claims["iss"] == ISS and claims["sub"] == f"{G}:42"
    assert claims["iat"] == clock.now and claims["exp"] == clock.now + 3600
    assert claims["jti"] == "ab" * 32 and claims["client_domain"] == "wallet.test"
    session = tokens(clock).read(t)
    assert session.account == G and session.memo == "42" and session.client_domain == "wallet.test"


def test_client_domain_claim_is_absent_without_one():
    t = tokens().issue(ClientIdentity(G), jti="x", client_domain=None, home_domain=None)
    claims = jwt.decode(t, options={"verify_signature": False})
    assert "client_domain" not in claims


@pytest.mark.parametrize(
    "forge",
    [
        lambda t, c: tokens(c, secret="another-secret-of-enough-length-xxxxx").issue(
            ClientIdentity(G), jti="x", client_domain=None, home_domain=None
        ),
        lambda t, c: tokens(c, issuer="https://other.test/auth").issue(
            ClientIdentity(G), jti="x", client_domain=None, home_domain=None
        ),
        lambda t, c: tokens(c, network="mainnet").issue(
            ClientIdentity(G), jti="x", client_domain=None, home_domain=None
        ),
        lambda t, c: jwt.encode(
            {
                "iss": ISS,
                "sub": G,
                "iat": int(c.now),
                "exp": int(c.now) + 60,
                "jti": "x",
                "network": "testnet",
            },
            SECRET,
            algorithm="HS512",
        ),
        lambda t, c: jwt.encode(
            {"iss": ISS, "sub": G, "iat": int(c.now), "exp": int(c.now) + 60, "network": "testnet"},
            SECRET,
            algorithm="HS256",
        ),
        lambda t, c: jwt.encode(
            {
                "iss": ISS,
                "sub": "GNOTANACCOUNT",
                "iat": int(c.now),
                "exp": int(c.now) + 60,
                "jti": "x",
                "network": "testnet",
            },
            SECRET,
            algorithm="HS256",
        ),
        lambda t, c: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),
        lambda t, c: "not.a.token",
        lambda t, c: t.rsplit(".", 1)[0] + ".",
    ],
    ids=[
        "other-key",
        "other-server",
        "other-network",
        "other-alg",
        "no-jti",
        "bad-sub",
        "tampered",
        "garbage",
        "unsigned",
    ],
)
def test_forged_or_foreign_tokens_are_refused(forge):
    clock = Clock()
    good = tokens(clock).issue(ClientIdentity(G), jti="x", client_domain=None, home_domain=None)
    with pytest.raises(AuthenticationFailed) as info:
        tokens(clock).read(forge(good, clock))
    assert info.value.status == 403


def test_expired_token_is_refused():
    clock = Clock()
    t = tokens(clock).issue(ClientIdentity(G), jti="x", client_domain=None, home_domain=None)
    clock.now += 3600 + 6
    with pytest.raises(AuthenticationFailed, match="expired"):
        tokens(clock).read(t)


def test_token_from_the_future_is_refused():
    clock = Clock()
    t = tokens(Clock(clock.now + 60)).issue(
        ClientIdentity(G), jti="x", client_domain=None, home_domain=None
    )
    with pytest.raises(AuthenticationFailed):
        tokens(clock).read(t)


@pytest.mark.parametrize(
    ("sub", "account", "memo"),
    [
        (G, G, None),
        (f"{G}:18446744073709551615", G, "18446744073709551615"),
        ("MAAAAAAAAAAAAAB7BQ2L7E5NBWMXDUCMZSIPOBKRDSBYVLMXGSSKF6YNPIB7Y77ITLVL6", None, None),
    ],
)
def test_subject_forms(sub, account, memo):
    identity = ClientIdentity.from_sub(sub)
    assert identity.sub == sub
    if account:
        assert (identity.account, identity.memo) == (account, memo)
    else:
        assert identity.muxed == sub and identity.memo is not None


@pytest.mark.parametrize("sub", [f"{G}:0", f"{G}:18446744073709551616", f"{G}:x", "G", f"{G}:"])
def test_bad_subjects(sub):
    with pytest.raises(ValueError):
        ClientIdentity.from_sub(sub)
