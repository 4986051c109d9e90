"""SEP-1: the served stellar.toml, the organization's own file overlaid with what the server
itself knows (network, signing key, mounted endpoints, accounts), so the two cannot drift."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import tomli_w
from stellar_sdk import StrKey

from gateway.settings import ConfigError, Settings

SEP1_VERSION = "2.7.0"
MAX_BYTES = 100_000
ENDPOINT_KEYS = (
    "WEB_AUTH_ENDPOINT",
    "KYC_SERVER",
    "DIRECT_PAYMENT_SERVER",
    "AUTH_SERVER",
    "FEDERATION_SERVER",
    "ANCHOR_QUOTE_SERVER",
)
SERVER_OWNED = frozenset(
    {"VERSION", "NETWORK_PASSPHRASE", "SIGNING_KEY", "ACCOUNTS", "HORIZON_URL", *ENDPOINT_KEYS}
)
# The validation suite requires these on every currency (stricter than SEP-1).
CURRENCY_REQUIRED = ("desc", "status", "is_asset_anchored", "anchor_asset_type")
ANCHOR_ASSET_TYPES = ("fiat", "crypto", "nft", "stock", "bond", "commodity", "realestate", "other")


def render(
    settings: Settings, org_text: str, endpoints: Mapping[str, str], signing_key: str
) -> bytes:
    """The stellar.toml bytes to serve. ConfigError lists every problem, one per line."""
    where = settings.stellar_toml
    try:
        org: dict[str, Any] = tomllib.loads(org_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"stellar_toml: {where} is not valid TOML: {exc}"]) from None
    problems: list[str] = []
    for key in sorted(SERVER_OWNED & org.keys()):
        problems.append(
            f"stellar_toml: {where} sets {key}; the server publishes it from settings, remove it"
        )
    for path in _secret_seeds(org):
        problems.append(f"stellar_toml: {where} holds a secret seed at {path}; never publish it")

    doc: dict[str, Any] = {
        "VERSION": SEP1_VERSION,
        "NETWORK_PASSPHRASE": settings.network_passphrase,
        "SIGNING_KEY": signing_key,
    }
    if settings.horizon.publish:
        doc["HORIZON_URL"] = settings.horizon.url
    accounts = list(dict.fromkeys([*settings.accounts, *(a.issuer for a in settings.assets)]))
    if accounts:
        doc["ACCOUNTS"] = accounts
    for key in ENDPOINT_KEYS:
        if key in endpoints:
            doc[key] = endpoints[key]
    for key, value in org.items():
        if key not in SERVER_OWNED and key != "CURRENCIES":
            doc[key] = value
    currencies = _currencies(settings, org.get("CURRENCIES", []), problems)
    if currencies:
        doc["CURRENCIES"] = currencies

    for key, url in _urls(doc):
        reason = _url_problem(url, settings.is_mainnet)
        if reason:
            problems.append(f"stellar_toml: {key} = {url!r} {reason}")
    if problems:
        raise ConfigError(problems)
    body = tomli_w.dumps(doc).encode("utf-8")
    if len(body) > MAX_BYTES:
        raise ConfigError(
            [f"stellar_toml: the served file would be {len(body)} bytes; SEP-1 allows {MAX_BYTES}"]
        )
    return body


def _currencies(settings: Settings, org: Any, problems: list[str]) -> list[dict[str, Any]]:
    if not isinstance(org, list) or not all(isinstance(c, dict) for c in org):
        problems.append("stellar_toml: CURRENCIES must be an array of tables ([[CURRENCIES]])")
        return []
    by_code = {c.get("code"): c for c in org}
    out: list[dict[str, Any]] = []
    for i, asset in enumerate(settings.assets):
        entry = by_code.get(asset.code)
        if entry is None:
            problems.append(
                f"assets[{i}]: {settings.stellar_toml} has no [[CURRENCIES]] entry with "
                f"code = {asset.code!r} (it describes the asset: desc, status, ...)"
            )
            continue
        if entry.get("issuer") not in (None, asset.issuer):
            problems.append(
                f"assets[{i}].issuer: {settings.stellar_toml} gives {asset.code} another issuer; "
                "leave issuer out of the file, the server adds it"
            )
        merged: dict[str, Any] = {"code": asset.code, "issuer": asset.issuer}
        merged.update({k: v for k, v in entry.items() if k not in ("code", "issuer")})
        merged.setdefault("display_decimals", asset.decimals)
        out.append(merged)
    served = {a.code for a in settings.assets}
    out.extend(c for c in org if c.get("code") not in served)
    for c in out:
        label = c.get("code", "?")
        missing = [k for k in CURRENCY_REQUIRED if k not in c]
        if missing and "toml" not in c:
            problems.append(f"stellar_toml: CURRENCIES {label} needs {', '.join(missing)}")
        kind = c.get("anchor_asset_type")
        if kind is not None and kind not in ANCHOR_ASSET_TYPES:
            problems.append(f"stellar_toml: CURRENCIES {label} has unknown anchor_asset_type")
    return out


def _secret_seeds(value: Any, path: str = "") -> list[str]:
    """Where in the organization's file an S... secret seed sits (it must never be served)."""
    if isinstance(value, str):
        return [path] if StrKey.is_valid_ed25519_secret_seed(value.strip()) else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _secret_seeds(v, f"{path}.{k}".lstrip("."))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _secret_seeds(v, f"{path}[{i}]")]
    return []


def _urls(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = [(k, v) for k, v in doc.items() if k in ENDPOINT_KEYS or k == "HORIZON_URL"]
    documentation = doc.get("DOCUMENTATION")
    if isinstance(documentation, dict) and isinstance(documentation.get("ORG_URL"), str):
        found.append(("DOCUMENTATION.ORG_URL", documentation["ORG_URL"]))
    return found


def _url_problem(url: str, mainnet: bool) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "is not an absolute URL"
    if url.endswith("/"):
        return "must not end with '/'"
    if mainnet and parts.scheme != "https":
        return "must use https on mainnet"
    return None
