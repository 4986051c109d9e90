from __future__ import annotations

import tomllib

import pytest

from gateway.sep1 import render
from gateway.settings import ConfigError
from tests.conftest import REPO

ORG = (REPO / "well-known/stellar.toml").read_text()
KEY = "GAIVTVXOXBVQ7WHN2ONFTF4HKQ6KFYSSQPP6EYCPMIDZNCPWKCU3HQVZ"
ENDPOINTS = {"WEB_AUTH_ENDPOINT": "http://localhost:8000/auth"}


def problems(settings, org=ORG, endpoints=ENDPOINTS):
    with pytest.raises(ConfigError) as info:
        render(settings, org, endpoints, KEY)
    return info.value.problems


def test_served_file_overlays_server_facts_on_the_organizations_file(make_settings):
    s = make_settings()
    doc = tomllib.loads(render(s, ORG, ENDPOINTS, KEY).decode())
    assert doc["VERSION"] == "2.7.0"
    assert doc["NETWORK_PASSPHRASE"] == s.network_passphrase
    assert doc["SIGNING_KEY"] == KEY
    assert doc["WEB_AUTH_ENDPOINT"] == "http://localhost:8000/auth"
    assert doc["HORIZON_URL"] == s.horizon.url
    assert doc["ACCOUNTS"] == [s.assets[0].issuer]
    assert doc["DOCUMENTATION"]["ORG_NAME"] == "Example Gateway Ltd."
    [currency] = doc["CURRENCIES"]
    assert currency["code"] == "GWUSD" and currency["issuer"] == s.assets[0].issuer
    assert currency["display_decimals"] == 2
    for key in ("desc", "status", "is_asset_anchored", "anchor_asset_type"):
        assert key in currency
    assert "KYC_SERVER" not in doc  # only mounted endpoints are published


def test_horizon_url_can_stay_private(make_settings):
    doc = tomllib.loads(
        render(make_settings(GATEWAY_HORIZON_PUBLISH="false"), ORG, ENDPOINTS, KEY).decode()
    )
    assert "HORIZON_URL" not in doc


def test_organizations_file_may_not_set_server_owned_keys(make_settings):
    org = 'SIGNING_KEY = "GXXX"\nWEB_AUTH_ENDPOINT = "https://x/auth"\n' + ORG
    assert problems(make_settings(), org) == [
        "stellar_toml: ../well-known/stellar.toml sets SIGNING_KEY; the server publishes it "
        "from settings, remove it",
        "stellar_toml: ../well-known/stellar.toml sets WEB_AUTH_ENDPOINT; the server publishes "
        "it from settings, remove it",
    ]


def test_every_configured_asset_needs_its_description(make_settings):
    org = ORG.split("[[CURRENCIES]]")[0]
    assert problems(make_settings(), org)[0].startswith(
        "assets[0]: ../well-known/stellar.toml has no [[CURRENCIES]] entry with code = 'GWUSD'"
    )


def test_currency_fields_the_validation_suite_requires(make_settings):
    org = ORG.replace('anchor_asset_type = "fiat"\n', "").replace('status = "test"\n', "")
    assert problems(make_settings(), org) == [
        "stellar_toml: CURRENCIES GWUSD needs status, anchor_asset_type"
    ]


def test_issuer_conflict_is_refused(make_settings):
    org = ORG.replace('code = "GWUSD"', f'code = "GWUSD"\nissuer = "{KEY}"')
    assert problems(make_settings(), org)[0].startswith("assets[0].issuer:")


def test_urls_must_not_end_with_a_slash_and_mainnet_needs_https(make_settings):
    assert problems(make_settings(), ORG, {"WEB_AUTH_ENDPOINT": "http://localhost:8000/auth/"}) == [
        "stellar_toml: WEB_AUTH_ENDPOINT = 'http://localhost:8000/auth/' must not end with '/'"
    ]


def test_size_limit(make_settings):
    big = ORG + "\n" + "\n".join(f'X{i} = "{"y" * 100}"' for i in range(1000))
    assert problems(make_settings(), big)[0].startswith("stellar_toml: the served file would be")


def test_invalid_organization_toml(make_settings):
    assert problems(make_settings(), "ORG = ")[0].startswith(
        "stellar_toml: ../well-known/stellar.toml is not valid TOML"
    )


def test_a_secret_seed_anywhere_in_the_organizations_file_is_refused(make_settings):
    seed = "SBGWSG6BTNCKCOB3DIFBGCVMUPQFYPA2G4O34RMTB343OYPXU5DJDVMN"
    org = f'URI_REQUEST_SIGNING_KEY = "{seed}"\n' + ORG.replace(
        'name = "Operations Desk"', f'name = "Operations Desk"\nkeybase = "{seed}"'
    )
    problems_found = problems(make_settings(), org)
    assert problems_found == [
        "stellar_toml: ../well-known/stellar.toml holds a secret seed at "
        "URI_REQUEST_SIGNING_KEY; never publish it",
        "stellar_toml: ../well-known/stellar.toml holds a secret seed at "
        "PRINCIPALS[0].keybase; never publish it",
    ]
    assert all(seed not in p for p in problems_found)
