"""SEP-10 web authentication use cases: build a challenge, exchange a signed one for a token.

Challenge building and verification are stellar-sdk's; this module adds what the SEP leaves
to servers: client_domain lookup, signer thresholds from Horizon, hardening (the server key
never helps authenticate), and one token per challenge.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stellar_sdk import Keypair, MuxedAccount, TransactionEnvelope
from stellar_sdk.operation import ManageData
from stellar_sdk.sep.ed25519_public_key_signer import Ed25519PublicKeySigner
from stellar_sdk.sep.exceptions import InvalidSep10ChallengeError
from stellar_sdk.sep.stellar_web_authentication import (
    build_challenge_transaction,
    read_challenge_transaction,
    verify_challenge_transaction_signers,
)

from gateway.errors import BadRequest, InvalidField, RemoteTomlError
from gateway.outbound.horizon import HorizonAccounts
from gateway.outbound.stellar_toml import StellarTomls, normalize_domain, signing_key_of
from gateway.sep10.tokens import SessionTokens
from gateway.types import ClientIdentity, parse_account_or_muxed, parse_memo_id

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWorkFactory

log = logging.getLogger("gateway.sep10")

CLIENT_DOMAIN_OP = "client_domain"


@dataclass(frozen=True, slots=True)
class WebAuthConfig:
    signing_key: Keypair
    network_passphrase: str
    home_domains: tuple[str, ...]  # the first is the default
    web_auth_domain: str
    challenge_timeout: int
    client_domain_policy: str  # "off" | "optional" | "required"


class WebAuthService:
    def __init__(
        self,
        config: WebAuthConfig,
        *,
        horizon: HorizonAccounts,
        tomls: StellarTomls,
        uow: UnitOfWorkFactory,
        tokens: SessionTokens,
        clock: Callable[[], float],
    ):
        self._c = config
        self._server_key = config.signing_key.public_key
        self._horizon = horizon
        self._tomls = tomls
        self._uow = uow
        self._tokens = tokens
        self._clock = clock
        self.tokens_issued = 0  # session tokens this process has issued (for /metrics)

    async def challenge(
        self,
        account: str | None,
        memo: str | None = None,
        home_domain: str | None = None,
        client_domain: str | None = None,
    ) -> str:
        """A challenge transaction (base64 XDR) for ``account`` signed by our SIGNING_KEY."""
        client = parse_account_or_muxed(account, "account")
        base = MuxedAccount.from_account(client).account_id if client.startswith("M") else client
        if base == self._server_key:
            raise InvalidField("account", "must not be the server's signing key")
        memo_id = None
        if memo is not None and memo != "":
            if client.startswith("M"):
                raise InvalidField("memo", "must not be sent with a muxed (M...) account")
            memo_id = parse_memo_id(memo, "memo")
        home = self._home_domain(home_domain)
        domain, client_key = await self._client_domain_key(client_domain)
        return build_challenge_transaction(
            server_secret=self._c.signing_key.secret,
            client_account_id=client,
            home_domain=home,
            web_auth_domain=self._c.web_auth_domain,
            network_passphrase=self._c.network_passphrase,
            timeout=self._c.challenge_timeout,
            client_domain=domain,
            client_signing_key=client_key,
            memo=memo_id,
        )

    def _home_domain(self, requested: str | None) -> str:
        if not requested:
            return self._c.home_domains[0]
        wanted = requested.strip().lower()
        for d in self._c.home_domains:
            if d.lower() == wanted:
                return d
        raise InvalidField("home_domain", f"is not served here; use {self._c.home_domains[0]}")

    async def _client_domain_key(self, client_domain: str | None) -> tuple[str | None, str | None]:
        policy = self._c.client_domain_policy
        if not client_domain:
            if policy == "required":
                raise InvalidField("client_domain", "is required by this server")
            return None, None
        if policy == "off":
            return None, None  # SEP-10: proceed as if it had not been sent
        try:
            domain = normalize_domain(client_domain)
            key = signing_key_of(await self._tomls.fetch(domain), domain)
        except RemoteTomlError as exc:
            raise InvalidField("client_domain", exc.message) from None
        if key == self._server_key:
            raise InvalidField("client_domain", "its SIGNING_KEY is this server's own key")
        return domain, key

    async def token(self, transaction: object) -> str:
        """Verify a signed challenge and return a session JWT; each challenge works once."""
        xdr = _strict_envelope(transaction)
        try:
            challenge = read_challenge_transaction(
                xdr,
                self._server_key,
                self._c.home_domains,
                self._c.web_auth_domain,
                self._c.network_passphrase,
            )
        except InvalidSep10ChallengeError as exc:
            raise BadRequest(f"invalid challenge: {exc}") from None
        except Exception:
            # Undecodable XDR surfaces as assorted errors from the XDR layer.
            raise InvalidField("transaction", "is not a valid XDR TransactionEnvelope") from None
        envelope = challenge.transaction
        identity = ClientIdentity.from_challenge(challenge.client_account_id, challenge.memo)
        if identity.account == self._server_key:
            raise BadRequest("invalid challenge: the client account is the server's signing key")
        client_domain = self._client_domain_of(envelope)

        account = await self._horizon.account(identity.account)
        if account is None:
            # SEP-10: an account that does not exist signs with its master key only.
            expected = 3 if client_domain else 2
            if len(envelope.signatures) != expected:
                raise BadRequest(
                    f"invalid challenge: an account that does not exist must send exactly "
                    f"{expected} signatures (server, master key"
                    f"{', client domain' if client_domain else ''})"
                )
            signers = [Ed25519PublicKeySigner(identity.account, 255)]
            threshold = 1
        else:
            # Weight-0 keys are not signers; the server key never helps a client.
            signers = [
                Ed25519PublicKeySigner(s.key, s.weight)
                for s in account.signers
                if s.weight > 0 and s.key != self._server_key
            ]
            if not signers:
                raise BadRequest("invalid challenge: the account has no usable signers")
            threshold = account.med_threshold
        try:
            # Every signature must match a distinct signer (server, client domain, account).
            found = verify_challenge_transaction_signers(
                xdr,
                self._server_key,
                self._c.home_domains,
                self._c.web_auth_domain,
                self._c.network_passphrase,
                signers,
            )
        except InvalidSep10ChallengeError as exc:
            raise BadRequest(f"invalid challenge: {exc}") from None
        weight = sum(s.weight for s in found)
        if weight < threshold:
            raise BadRequest(
                f"invalid challenge: signers with weight {weight} do not meet threshold {threshold}"
            )

        tx = envelope.transaction
        assert tx.preconditions is not None and tx.preconditions.time_bounds is not None
        jti = envelope.hash_hex()
        async with self._uow(autocommit=True) as uow:
            first_use = await uow.challenges.consume(jti, tx.preconditions.time_bounds.max_time)
        if not first_use:
            raise BadRequest("invalid challenge: this challenge has already been used")
        token = self._tokens.issue(
            identity,
            jti=jti,
            client_domain=client_domain,
            home_domain=challenge.matched_home_domain,
        )
        self.tokens_issued += 1
        return token

    def _client_domain_of(self, envelope: TransactionEnvelope) -> str | None:
        for op in envelope.transaction.operations[1:]:
            if isinstance(op, ManageData) and op.data_name == CLIENT_DOMAIN_OP:
                if op.source is None or op.source.account_id == self._server_key:
                    raise BadRequest(
                        "invalid challenge: the client_domain operation must be sourced by the "
                        "client domain's SIGNING_KEY"
                    )
                try:
                    return normalize_domain((op.data_value or b"").decode("ascii"))
                except (UnicodeDecodeError, RemoteTomlError):
                    raise BadRequest(
                        "invalid challenge: client_domain value is not a domain"
                    ) from None
        return None


_FEE_BUMP = (5).to_bytes(4, "big")  # XDR EnvelopeType ENVELOPE_TYPE_TX_FEE_BUMP


def _strict_envelope(transaction: object) -> str:
    if not isinstance(transaction, str) or not transaction.strip():
        raise InvalidField("transaction", "is required (base64 XDR of the signed challenge)")
    text = transaction.strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidField("transaction", "is not valid base64") from None
    if raw[:4] == _FEE_BUMP:
        raise InvalidField("transaction", "must be the challenge transaction, not a fee bump")
    return text
