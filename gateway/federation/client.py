"""Resolving another organization's federation address (SEP-2) through its stellar.toml."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stellar_sdk import StrKey

from gateway.errors import GatewayError, InvalidField, RemoteTomlError
from gateway.outbound.compliance_peers import CompliancePeers, PeerError, check_url
from gateway.outbound.stellar_toml import StellarTomls, normalize_domain
from gateway.types import normalize_memo


@dataclass(frozen=True)
class Resolved:
    account_id: str
    memo_type: str | None
    memo: str | None
    toml: Mapping[str, Any]  # the organization's stellar.toml, for its other endpoints


async def resolve_address(
    address: str,
    *,
    tomls: StellarTomls,
    peers: CompliancePeers,
    insecure_hosts: Iterable[str] = (),
) -> Resolved:
    """The account (and memo) ``name*domain`` pays. Errors never repeat the address: it is
    often an email or a phone number."""
    name, sep, domain = address.rpartition("*")
    if not sep or not name or "*" in name:
        raise InvalidField("destination", "must be a federation address name*domain")
    try:
        toml = await tomls.fetch(normalize_domain(domain))
    except RemoteTomlError as exc:
        raise PeerError(exc.message) from None
    server = toml.get("FEDERATION_SERVER")
    if not isinstance(server, str):
        raise PeerError(f"{domain} publishes no FEDERATION_SERVER")
    server = check_url(server, f"the FEDERATION_SERVER of {domain}", insecure_hosts)
    record = await peers.resolve(server, address)
    account = record.get("account_id")
    if not isinstance(account, str) or not StrKey.is_valid_ed25519_public_key(account):
        raise PeerError("the federation record has no valid account_id")
    memo_type, memo = record.get("memo_type"), record.get("memo")
    if memo_type in (None, "") or memo in (None, ""):
        return Resolved(account, None, None, toml)
    try:
        return Resolved(account, str(memo_type), normalize_memo(memo, memo_type), toml)
    except GatewayError:
        raise PeerError("the federation record has a memo that cannot be used") from None
