"""Settings: one frozen tree loaded from ``config/<network>.toml`` plus environment overrides.

Override scheme: every setting has the environment name ``GATEWAY_`` + its dotted path in upper
case with dots as underscores (``horizon.url`` -> ``GATEWAY_HORIZON_URL``). Scalars are given as
text; lists and tables as JSON. ``GATEWAY_CONFIG`` names the TOML file. Secrets
(``signing_secret``, ``jwt_secret``, ``kyc.key``) come only from the environment.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from stellar_sdk import Keypair, StrKey

PUBLIC_PASSPHRASE = "Public Global Stellar Network ; September 2015"  # noqa: S105
TESTNET_PASSPHRASE = "Test SDF Network ; September 2015"  # noqa: S105
FUTURENET_PASSPHRASE = "Test SDF Future Network ; October 2022"  # noqa: S105
ENV_PREFIX = "GATEWAY_"
CONFIG_ENV = "GATEWAY_CONFIG"
DEFAULT_CONFIG = "config/testnet.toml"


class ConfigError(Exception):
    """Settings that cannot run; ``problems`` holds one line per bad setting."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class Secret:
    """A secret string that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class AssetSettings:
    code: str
    issuer: str
    decimals: int = 7
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None


@dataclass(frozen=True)
class HorizonSettings:
    url: str = "https://horizon-testnet.stellar.org"
    timeout_seconds: float = 10.0
    publish: bool = True


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite+aiosqlite:///../data/gateway.db"
    pool_size: int = 10
    echo: bool = False


@dataclass(frozen=True)
class OutboundSettings:
    """Calls to other organizations' hosts (stellar.toml, federation)."""

    timeout_seconds: float = 5.0
    toml_max_bytes: int = 100_000
    toml_cache_seconds: int = 300
    toml_negative_cache_seconds: int = 30
    # Hosts whose stellar.toml may be read over http:// and on private or loopback addresses
    # (a wallet under development on localhost). Testnet only; mainnet refuses a list.
    insecure_hosts: tuple[str, ...] = ()
    # Likewise for callback URLs, which are POSTed to: empty unless you test callbacks to a
    # local receiver (a callback to localhost could reach any local service). Testnet only.
    insecure_callback_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerSettings:
    max_body_bytes: int = 1_048_576
    access_log: bool = False


@dataclass(frozen=True)
class RateLimitSettings:
    """Requests a minute (0: no limit) per client IP and per caller (the account a SEP-10
    challenge is for; the session or operator key of the others)."""

    sep10_challenge_per_ip: int = 60
    sep10_challenge_per_account: int = 20
    sep3_per_ip: int = 120
    sep3_per_institution: int = 120  # per sending domain, once its signature is verified
    sep12_put_per_ip: int = 60
    sep12_put_per_account: int = 30
    ops_per_ip: int = 600
    ops_per_key: int = 300


@dataclass(frozen=True)
class Sep10Settings:
    challenge_timeout_seconds: int = 900
    jwt_lifetime_seconds: int = 3600
    # "off": ignore client_domain; "optional": verify when sent; "required": refuse without.
    client_domain: Literal["off", "optional", "required"] = "optional"
    # Extra home domains this server authenticates for (the first is always home_domain).
    other_home_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class SepToggles:
    sep2: bool = True
    sep3: bool = False
    sep12: bool = True
    sep31: bool = True


@dataclass(frozen=True)
class KycSettings:
    # "auto": accept complete, well-formed data with no third-party check (testnet guidance);
    # "provider": the operator's KYC provider decides; "off": collect nothing (testnet only).
    validation: Literal["auto", "provider", "off"] = "auto"
    # Encryption keys of personal data at rest: 32 random bytes, base64. ``old_keys`` still
    # decrypt until `gateway keys rotate-kyc` has re-encrypted everything with ``key``.
    key: Secret | None = None
    old_keys: tuple[Secret, ...] = ()
    provider_url: str = ""
    provider_secret: Secret | None = None
    provider_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class CustomerTypeSettings:
    """A SEP-12 customer type: the fields it needs and when it applies."""

    name: str
    direction: Literal["sender", "receiver"]
    description: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    # Fields the customer must confirm with a code sent to them (mobile_number, email_address).
    verify: tuple[str, ...] = ()
    # Per asset code, the amount from which this type (instead of the base type) applies.
    min_amount: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class Sep12Settings:
    default_type: str = "sep31-sender"
    # How verification codes reach customers. "log" writes them to the log (testing only).
    notifier: Literal["log"] = "log"
    max_file_bytes: int = 5_000_000
    unattached_file_seconds: int = 86_400
    verification_code_seconds: int = 600
    verification_max_attempts: int = 5
    types: tuple[CustomerTypeSettings, ...] = ()


@dataclass(frozen=True)
class Sep31AssetSettings:
    """How this anchor receives one asset over SEP-31 (its limits are in [[assets]])."""

    code: str
    funding_methods: tuple[str, ...]
    fee_fixed: Decimal = Decimal(0)
    fee_percent: Decimal = Decimal(0)
    enabled: bool = True


@dataclass(frozen=True)
class Sep31Settings:
    # The account sending anchors pay (stellar_account_id); payments are matched by memo.
    receiving_account: str = ""
    # Sending anchors allowed to use SEP-31: their SEP-10 accounts and client domains.
    # Testnet only: both empty means any authenticated account.
    partner_accounts: tuple[str, ...] = ()
    partner_domains: tuple[str, ...] = ()
    # A payment short of or above the expected amount: send it back, or hold it for an
    # operator. "refund" refunds a short payment whole, and the excess of an overpayment.
    underpayment: Literal["refund", "hold"] = "hold"
    overpayment: Literal["refund", "hold"] = "hold"
    # A payout that fails for good: the transfer goes to error, or is refunded.
    payout_failure: Literal["error", "refund"] = "error"
    # Transfers still waiting for the sender's payment after this long expire.
    pending_sender_seconds: int = 86_400
    watch_in_server: bool = True  # watch from `gateway serve`, not only `gateway watch-payments`
    assets: tuple[Sep31AssetSettings, ...] = ()


@dataclass(frozen=True)
class Sep3PartnerSettings:
    """A sending institution our customers' data may be shared with (need_info)."""

    domain: str
    signing_key: str


@dataclass(frozen=True)
class Sep3Settings:
    """The compliance AUTH_SERVER (SEP-3)."""

    # Who screens senders: "list" (the local sanctions list below) or "http" (a screening
    # service at screening_url, signed with GATEWAY_SEP3_SCREENING_SECRET).
    screening: Literal["list", "http"] = "list"
    screening_url: str = ""
    screening_secret: Secret | None = None
    screening_timeout_seconds: float = 5.0
    # A local sanctions list (JSON: names, addresses, countries), reloaded when it changes.
    sanctions_list: str = ""
    # Payments of this amount or more wait for an operator (0: never).
    review_above: Decimal = Decimal(0)
    # What a pending answer tells the sender to wait before asking again.
    pending_seconds: int = 600
    # Institutions the recipient's data is shared with when they ask (need_info).
    share_with: tuple[Sep3PartnerSettings, ...] = ()


@dataclass(frozen=True)
class DisbursementSettings:
    """Bulk disbursements (payout engine)."""

    approvals: int = 1  # distinct approvers before a disbursement starts (never the uploader)
    max_upload_bytes: int = 50_000_000
    # The hot wallet payouts leave from: minimal funds, never an asset's issuer.
    distribution_account: str = ""
    # Its secret seed: only `gateway disburse` and `gateway channels` need it (and derive
    # the channel accounts' keys from it, so no other secret is stored).
    distribution_secret: Secret | None = None
    max_ops_per_tx: int = 50  # payments packed into one transaction (Stellar allows 100)
    max_fee_stroops: int = 10_000  # base fee cap per operation
    tx_timeout_seconds: int = 30  # a transaction's time bound: it cannot apply after this
    # A payout sent back to ready (its transaction died) this many times fails instead.
    max_tries: int = 5
    channel_balance: Decimal = Decimal(5)  # XLM each new channel account starts with
    # Warn when what is available of an asset (balance less what is promised) falls below.
    low_balance: Decimal = Decimal(0)
    # A direct payout of more than this (in its asset's units) needs `approvals` approvers;
    # one of this much or less starts at once. 0: every direct payout is approved.
    direct_approval_above: Decimal = Decimal(0)
    balance_check_seconds: int = 60  # how often `gateway disburse` checks for low balances


@dataclass(frozen=True)
class FederationSettings:
    # The account that name*home_domain addresses pay, with each customer's id memo.
    # Empty: sep31.receiving_account.
    account: str = ""


@dataclass(frozen=True)
class OutboxSettings:
    """Delivery of signed callbacks (SEP-12, SEP-31) and other outgoing messages."""

    timeout_seconds: float = 10.0
    retry_seconds: tuple[int, ...] = (5, 15, 60, 300, 900)
    run_in_server: bool = True  # deliver from `gateway serve`, not only `gateway work`


@dataclass(frozen=True)
class ObservabilitySettings:
    """What ``GET /ready`` calls ready, and how long its checks may take."""

    # Each readiness check (database, schema, Horizon), and the balance read of /metrics.
    check_timeout_seconds: float = 2.0
    # Not ready when the payment watcher last caught up longer ago than this (SEP-31 on).
    watcher_max_lag_seconds: int = 300
    # Not ready when an outbox message has been due for longer than this, undelivered.
    outbox_max_overdue_seconds: int = 600


@dataclass(frozen=True)
class Settings:
    network: Literal["testnet", "mainnet"]
    network_passphrase: str
    home_domain: str
    base_url: str
    stellar_toml: str = "../well-known/stellar.toml"
    accounts: tuple[str, ...] = ()
    signing_secret: Secret | None = None
    jwt_secret: Secret | None = None
    horizon: HorizonSettings = field(default_factory=HorizonSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    outbound: OutboundSettings = field(default_factory=OutboundSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    sep10: Sep10Settings = field(default_factory=Sep10Settings)
    seps: SepToggles = field(default_factory=SepToggles)
    kyc: KycSettings = field(default_factory=KycSettings)
    sep12: Sep12Settings = field(default_factory=Sep12Settings)
    sep31: Sep31Settings = field(default_factory=Sep31Settings)
    federation: FederationSettings = field(default_factory=FederationSettings)
    sep3: Sep3Settings = field(default_factory=Sep3Settings)
    disbursement: DisbursementSettings = field(default_factory=DisbursementSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    assets: tuple[AssetSettings, ...] = ()
    # Testnet only: where generated secrets are kept so a restart can read its own data.
    testnet_secrets_file: str = "../data/testnet-secrets.json"
    # Directory of the TOML file; relative paths in settings are resolved against it.
    config_dir: Path = field(default=Path("."), compare=False)

    @property
    def is_mainnet(self) -> bool:
        return self.network == "mainnet"

    @property
    def signing_keypair(self) -> Keypair:
        if self.signing_secret is None:
            raise ConfigError(["signing_secret: not set (GATEWAY_SIGNING_SECRET)"])
        return Keypair.from_secret(self.signing_secret.reveal())

    @property
    def web_auth_domain(self) -> str:
        """Host of WEB_AUTH_ENDPOINT with a non-default port (URL.host), as SEP-10 requires."""
        return url_host(self.base_url)

    @property
    def federation_account(self) -> str:
        return self.federation.account or self.sep31.receiving_account

    @property
    def home_domains(self) -> tuple[str, ...]:
        return (self.home_domain, *self.sep10.other_home_domains)

    def resolve_path(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else (self.config_dir / p).resolve()


_SECRET_PATHS = frozenset(
    {
        ("signing_secret",),
        ("jwt_secret",),
        ("kyc", "key"),
        ("kyc", "old_keys"),
        ("kyc", "provider_secret"),
        ("sep3", "screening_secret"),
        ("disbursement", "distribution_secret"),
    }
)
# GATEWAY_* names that are not settings: the config path and the scripts' own switches.
OTHER_ENV_NAMES = frozenset(
    {
        CONFIG_ENV,
        "GATEWAY_LOG_LEVEL",
        "GATEWAY_SANDBOX_HORIZON",
        "GATEWAY_SANDBOX_HORIZON_PORT",
        "GATEWAY_TEST_POSTGRES_URL",
    }
)


def url_host(url: str) -> str:
    """``URL.host``: lower-case host name plus the port when it is not the scheme's default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "_".join(path).upper()


def setting_paths(cls: type = Settings, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf setting path (tables of assets count as one leaf)."""
    out: list[tuple[str, ...]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "config_dir":
            continue
        hint = hints[f.name]
        path = (*prefix, f.name)
        if dataclasses.is_dataclass(hint):
            out.extend(setting_paths(typing.cast(type, hint), path))
        else:
            out.append(path)
    return out


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    check_secrets: bool = True,
) -> Settings:
    """Load the TOML named by ``path`` (or ``GATEWAY_CONFIG``), apply environment overrides,
    and validate. Raises ConfigError listing every problem, one line per setting.
    ``check_secrets=False`` serves commands that sign nothing (``db upgrade``)."""
    environ = {} if environ is None else environ
    cfg_path = Path(path or environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    try:
        raw: dict[str, Any] = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{CONFIG_ENV}: config file {cfg_path} does not exist"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{CONFIG_ENV}: cannot read {cfg_path}: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{CONFIG_ENV}: {cfg_path} is not valid TOML: {exc}"]) from None

    problems: list[str] = []
    known_env = {env_name(leaf) for leaf in setting_paths()} | OTHER_ENV_NAMES
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known_env:
            problems.append(f"{name}: not a setting of this gateway (misspelled?)")
    for secret_path in _SECRET_PATHS:
        if _get(raw, secret_path) is not None:
            problems.append(
                f"{'.'.join(secret_path)}: secrets come only from the environment "
                f"({env_name(secret_path)}); remove it from {cfg_path}"
            )
            _pop(raw, secret_path)
    for leaf in setting_paths():
        name = env_name(leaf)
        if name in environ:
            _put(raw, leaf, _EnvText(environ[name]))

    settings = _build(Settings, raw, (), problems, extra={"config_dir": cfg_path.parent.resolve()})
    if problems:
        raise ConfigError(problems)
    assert isinstance(settings, Settings)
    problems.extend(validate(settings, check_secrets=check_secrets))
    if problems:
        raise ConfigError(problems)
    return settings


class _EnvText(str):
    """A value that came from the environment as text and must be coerced."""


def _get(raw: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = raw
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _pop(raw: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = raw
    for key in path[:-1]:
        node = node.get(key, {})
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _put(raw: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = raw
    for key in path[:-1]:
        nxt = node.get(key)
        if not isinstance(nxt, dict):
            nxt = node[key] = {}
        node = nxt
    node[path[-1]] = value


def _build(
    cls: type,
    raw: Any,
    path: tuple[str, ...],
    problems: list[str],
    extra: dict[str, Any] | None = None,
) -> Any:
    where = ".".join(path) or "config"
    if isinstance(raw, _EnvText):
        try:
            raw = json.loads(raw)
        except ValueError:
            problems.append(f"{where}: {env_name(path)} must be a JSON object")
            return None
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a table")
        return None
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)} - {"config_dir"}
    for key in raw:
        if key not in known:
            problems.append(f"{'.'.join((*path, key))}: unknown setting")
    kwargs: dict[str, Any] = dict(extra or {})
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                if f.name not in kwargs:
                    problems.append(f"{'.'.join((*path, f.name))}: required setting is missing")
            continue
        value = _coerce(hints[f.name], raw[f.name], (*path, f.name), problems)
        if value is not _INVALID:
            kwargs[f.name] = value
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        return None
    return cls(**kwargs)


_INVALID = object()


def _coerce(hint: Any, value: Any, path: tuple[str, ...], problems: list[str]) -> Any:
    where = ".".join(path)
    from_env = isinstance(value, _EnvText)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)

    def bad(expected: str) -> object:
        secret = (*path[:-1], path[-1].split("[")[0]) in _SECRET_PATHS
        shown = "" if secret else f" (got {str(value)[:60]!r})"
        source = f" from {env_name(path)}" if from_env else ""
        problems.append(f"{where}: must be {expected}{source}{shown}")
        return _INVALID

    if origin in (types.UnionType, typing.Union):
        non_none = [a for a in args if a is not type(None)]
        if value is None or (from_env and value == ""):
            return None
        return _coerce(non_none[0], value, path, problems)
    if hint is Secret:
        if not isinstance(value, str) or not value:
            return bad("a non-empty string")
        return Secret(str(value))
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type, hint), value, path, problems)
    if origin is Literal:
        if value not in args:
            return bad("one of " + ", ".join(repr(a) for a in args))
        return str(value)
    if hint is bool:
        if from_env:
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            return bad("true or false")
        return value if isinstance(value, bool) else bad("true or false")
    if hint is int:
        if from_env:
            try:
                return int(value)
            except ValueError:
                return bad("an integer")
        if isinstance(value, bool) or not isinstance(value, int):
            return bad("an integer")
        return value
    if hint is float:
        if from_env:
            try:
                number = float(value)
            except ValueError:
                return bad("a number")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            return bad("a number")
        else:
            number = float(value)
        return number if math.isfinite(number) else bad("a finite number")
    if hint is Decimal:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return bad("a decimal number (preferably quoted)")
        try:
            dec = Decimal(str(value))
        except InvalidOperation:
            return bad("a decimal number")
        return dec if dec.is_finite() else bad("a finite decimal number")
    if hint is str:
        return str(value) if isinstance(value, str) else bad("a string")
    if origin is dict:
        if from_env:
            try:
                value = json.loads(value)
            except ValueError:
                return bad("a JSON object")
        if not isinstance(value, dict):
            return bad("a table")
        table = {}
        for key, item in value.items():
            coerced = _coerce(args[1], item, (*path[:-1], f"{path[-1]}.{key}"), problems)
            if coerced is _INVALID or coerced is None:
                return _INVALID
            table[str(key)] = coerced
        return table
    if origin is tuple:
        item_hint = args[0]
        if from_env:
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    return bad("a JSON array")
            else:
                value = [v.strip() for v in text.split(",") if v.strip()]
        if not isinstance(value, list):
            return bad("a list")
        items = []
        for i, item in enumerate(value):
            coerced = _coerce(item_hint, item, (*path[:-1], f"{path[-1]}[{i}]"), problems)
            if coerced is _INVALID or coerced is None:
                return _INVALID
            items.append(coerced)
        return tuple(items)
    raise TypeError(f"unsupported setting type {hint!r} at {where}")  # pragma: no cover


_HOST_RE = re.compile(r"(?=.{1,253}(:\d{1,5})?$)[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(:\d{1,5})?")
_ASSET_CODE_RE = re.compile(r"[A-Za-z0-9]{1,12}")
_TESTNET_MARKERS = ("testnet", "futurenet", "localhost", "127.0.0.1")


def _is_url(url: str, *, allow_path: bool) -> str | None:
    """Return a reason when ``url`` is not an absolute http(s) URL without a trailing slash."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "has an invalid port"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http(s) URL"
    if "@" in parts.netloc:
        return "must not carry user credentials"
    if url.endswith("/"):
        return "must not end with '/'"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    if parts.path and not allow_path:
        return "must be scheme://host[:port] without a path"
    return None


def validate(s: Settings, *, check_secrets: bool = True) -> list[str]:
    """Boot-time checks; each problem is one line naming the setting."""
    p: list[str] = []
    main = s.is_mainnet
    if main and s.network_passphrase != PUBLIC_PASSPHRASE:
        p.append("network_passphrase: mainnet needs the public network passphrase")
    if not main and s.network_passphrase not in (TESTNET_PASSPHRASE, FUTURENET_PASSPHRASE):
        p.append("network_passphrase: testnet needs the testnet (or futurenet) passphrase")

    if not _HOST_RE.fullmatch(s.home_domain):
        p.append(
            "home_domain: must be a lower-case host name with an optional port, "
            "e.g. anchor.example.com"
        )
    for extra in s.sep10.other_home_domains:
        if not _HOST_RE.fullmatch(extra):
            p.append(f"sep10.other_home_domains: {extra!r} is not a host name")
    for d in s.home_domains:
        if len(f"{d} auth".encode()) > 64:
            p.append(f"home_domain: {d!r} is longer than SEP-10's 59 characters")

    reason = _is_url(s.base_url, allow_path=False)
    if reason:
        p.append(f"base_url: {reason}")
    elif main and not s.base_url.startswith("https://"):
        p.append("base_url: mainnet needs an https:// base URL")
    elif len(f"{s.web_auth_domain}".encode()) > 64:
        p.append("base_url: host is longer than the 64 bytes a SEP-10 web_auth_domain holds")

    reason = _is_url(s.horizon.url, allow_path=True)
    if reason:
        p.append(f"horizon.url: {reason}")
    elif main and (
        not s.horizon.url.startswith("https://")
        or any(m in urlsplit(s.horizon.url).netloc.lower() for m in _TESTNET_MARKERS)
    ):
        p.append("horizon.url: mainnet needs an https:// public-network Horizon, not a test one")
    if s.horizon.timeout_seconds <= 0:
        p.append("horizon.timeout_seconds: must be positive")
    if s.horizon.publish and urlsplit(s.horizon.url).path.strip("/"):
        p.append(
            "horizon.publish: horizon.url has a path (often an API key); it must not be "
            "published in stellar.toml: set horizon.publish = false"
        )

    db = s.database.url
    if not (db.startswith("sqlite+aiosqlite://") or db.startswith("postgresql+asyncpg://")):
        p.append("database.url: must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
    elif main and db.startswith("sqlite"):
        p.append("database.url: mainnet needs PostgreSQL (postgresql+asyncpg://), not SQLite")
    elif ":memory:" in db or "mode=memory" in db:
        p.append("database.url: an in-memory database loses everything; name a file")
    if s.database.pool_size < 1:
        p.append("database.pool_size: must be at least 1")

    if main and s.outbound.insecure_hosts:
        p.append("outbound.insecure_hosts: must be empty on mainnet")
    if main and s.outbound.insecure_callback_hosts:
        p.append("outbound.insecure_callback_hosts: must be empty on mainnet")
    if s.outbound.timeout_seconds <= 0:
        p.append("outbound.timeout_seconds: must be positive")
    if not 0 < s.outbound.toml_max_bytes <= 1_000_000:
        p.append("outbound.toml_max_bytes: must be between 1 and 1000000")
    if s.server.max_body_bytes < 1024:
        p.append("server.max_body_bytes: must be at least 1024")

    if not 60 <= s.sep10.challenge_timeout_seconds <= 3600:
        p.append("sep10.challenge_timeout_seconds: must be between 60 and 3600")
    if not 60 <= s.sep10.jwt_lifetime_seconds <= 86400:
        p.append("sep10.jwt_lifetime_seconds: must be between 60 and 86400")

    if main and s.kyc.validation != "provider":
        p.append(
            f"kyc.validation: mainnet refuses {s.kyc.validation!r}; it needs 'provider' "
            "(a real KYC check, not the testnet auto-accept)"
        )

    if check_secrets:
        p.extend(_validate_secrets(s))

    for account in s.accounts:
        if not StrKey.is_valid_ed25519_public_key(account):
            p.append(f"accounts: {account[:60]!r} is not a G... account id")
    seen: set[str] = set()
    for i, a in enumerate(s.assets):
        where = f"assets[{i}]"
        if not _ASSET_CODE_RE.fullmatch(a.code):
            p.append(f"{where}.code: must be 1-12 letters or digits")
        if a.code in seen:
            p.append(f"{where}.code: {a.code} is listed twice")
        seen.add(a.code)
        if not StrKey.is_valid_ed25519_public_key(a.issuer):
            p.append(f"{where}.issuer: must be a G... account id")
        if not 0 <= a.decimals <= 7:
            p.append(f"{where}.decimals: must be between 0 and 7")
        for name in ("min_amount", "max_amount"):
            value = getattr(a, name)
            if value is not None and value <= 0:
                p.append(f"{where}.{name}: must be positive")
        if a.min_amount is not None and a.max_amount is not None and a.min_amount > a.max_amount:
            p.append(f"{where}.min_amount: is greater than max_amount")
    p.extend(_validate_kyc(s))
    return p


_TYPE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def _validate_kyc(s: Settings) -> list[str]:
    from gateway.sep9 import CATALOG, VERIFIABLE_FIELDS

    p: list[str] = []
    k = s.kyc
    if k.validation == "provider":
        reason = _is_url(k.provider_url, allow_path=True)
        if reason:
            p.append(f"kyc.provider_url: {reason}")
        elif s.is_mainnet and not k.provider_url.startswith("https://"):
            p.append("kyc.provider_url: mainnet needs an https:// KYC provider")
    if not 0 < k.provider_timeout_seconds <= 120:
        p.append("kyc.provider_timeout_seconds: must be between 0 and 120")
    c = s.sep12
    if c.max_file_bytes < 1024 or c.max_file_bytes > 50_000_000:
        p.append("sep12.max_file_bytes: must be between 1024 and 50000000")
    if c.verification_code_seconds < 60:
        p.append("sep12.verification_code_seconds: must be at least 60")
    if c.verification_max_attempts < 1:
        p.append("sep12.verification_max_attempts: must be at least 1")
    names: set[str] = set()
    assets = {a.code for a in s.assets}
    base: dict[str, list[str]] = {"sender": [], "receiver": []}
    for i, t in enumerate(c.types):
        where = f"sep12.types[{i}]"
        if not _TYPE_NAME_RE.fullmatch(t.name):
            p.append(f"{where}.name: must be lower-case letters, digits, - or _")
        if t.name in names:
            p.append(f"{where}.name: {t.name} is listed twice")
        names.add(t.name)
        for kind in ("required", "optional", "verify"):
            for f in getattr(t, kind):
                if f not in CATALOG:
                    p.append(f"{where}.{kind}: {f!r} is not a SEP-9 field this server collects")
        if set(t.required) & set(t.optional):
            p.append(f"{where}.optional: repeats fields of required")
        for f in t.verify:
            if f not in VERIFIABLE_FIELDS:
                p.append(f"{where}.verify: only mobile_number and email_address take a code")
            elif f not in (*t.required, *t.optional):
                p.append(f"{where}.verify: {f} is neither required nor optional")
        for code, amount in t.min_amount.items():
            if code not in assets:
                p.append(f"{where}.min_amount: {code} is not a configured asset")
            if amount <= 0:
                p.append(f"{where}.min_amount: amounts must be positive")
        if not t.min_amount:
            base[t.direction].append(t.name)
    for direction, found in base.items():
        if len(found) > 1:
            p.append(
                f"sep12.types: {direction} has several base types ({', '.join(found)}); "
                "give all but one a min_amount"
            )
        elif not found and any(t.direction == direction for t in c.types):
            p.append(f"sep12.types: {direction} needs one base type without min_amount")
    if s.is_mainnet and c.notifier == "log" and any(t.verify for t in c.types):
        p.append(
            "sep12.notifier: mainnet needs a real SMS/email notifier for the `verify` "
            "fields; the log notifier only writes codes to the log"
        )
    if c.types and c.default_type not in names:
        p.append(f"sep12.default_type: {c.default_type!r} is not one of sep12.types")
    p.extend(_validate_sep31(s))
    p.extend(_validate_federation(s))
    p.extend(_validate_sep3(s))
    if not 0 <= s.disbursement.approvals <= 10:
        p.append("disbursement.approvals: must be between 0 and 10")
    if s.is_mainnet and s.disbursement.approvals < 1:
        p.append("disbursement.approvals: mainnet needs at least one approver")
    p.extend(_validate_distribution(s))
    for limit in dataclasses.fields(s.rate_limits):
        if not 0 <= getattr(s.rate_limits, limit.name) <= 1_000_000:
            p.append(f"rate_limits.{limit.name}: must be between 0 and 1000000 a minute")
    if not 0 < s.outbox.timeout_seconds <= 60:
        p.append("outbox.timeout_seconds: must be between 0 and 60")
    if not s.outbox.retry_seconds or any(r <= 0 for r in s.outbox.retry_seconds):
        p.append("outbox.retry_seconds: must list positive delays")
    p.extend(_validate_observability(s))
    return p


def _validate_observability(s: Settings) -> list[str]:
    p: list[str] = []
    c = s.observability
    if not 0 < c.check_timeout_seconds <= 30:
        p.append("observability.check_timeout_seconds: must be between 0 and 30")
    if not 10 <= c.watcher_max_lag_seconds <= 86_400:
        p.append("observability.watcher_max_lag_seconds: must be between 10 and 86400")
    if not 30 <= c.outbox_max_overdue_seconds <= 86_400:
        p.append("observability.outbox_max_overdue_seconds: must be between 30 and 86400")
    return p


def _validate_sep3(s: Settings) -> list[str]:
    p: list[str] = []
    c = s.sep3
    if s.seps.sep3 and s.federation.account not in ("", s.sep31.receiving_account):
        p.append(
            "federation.account: with sep3 on it must be sep31.receiving_account (or empty): "
            "the payment watcher reads that account for authorized payments"
        )
    if s.seps.sep3 and not StrKey.is_valid_ed25519_public_key(s.sep31.receiving_account):
        p.append("sep31.receiving_account: sep3 needs the G... account payments arrive at")
    if s.seps.sep3 and c.sanctions_list and not s.resolve_path(c.sanctions_list).is_file():
        p.append(f"sep3.sanctions_list: {c.sanctions_list} is not a file")
    if s.seps.sep3 and c.screening == "http":
        reason = _is_url(c.screening_url, allow_path=True)
        if reason:
            p.append(f"sep3.screening_url: {reason}")
        elif s.is_mainnet and not c.screening_url.startswith("https://"):
            p.append("sep3.screening_url: mainnet needs an https:// screening service")
        if c.screening_secret is None:
            p.append("sep3.screening_secret: set GATEWAY_SEP3_SCREENING_SECRET")
    if not 0 < c.screening_timeout_seconds <= 60:
        p.append("sep3.screening_timeout_seconds: must be between 0 and 60")
    if s.is_mainnet and s.seps.sep3 and c.screening == "list" and not c.sanctions_list:
        p.append("sep3.sanctions_list: mainnet needs a sanctions list to answer SEP-3 requests")
    if c.review_above < 0:
        p.append("sep3.review_above: must not be negative")
    if not 1 <= c.pending_seconds <= 86_400:
        p.append("sep3.pending_seconds: must be between 1 and 86400")
    for i, partner in enumerate(c.share_with):
        if not StrKey.is_valid_ed25519_public_key(partner.signing_key):
            p.append(f"sep3.share_with[{i}].signing_key: must be a G... key")
        if not partner.domain or partner.domain != partner.domain.lower():
            p.append(f"sep3.share_with[{i}].domain: must be a lower-case domain")
    return p


def _validate_distribution(s: Settings) -> list[str]:
    p: list[str] = []
    c = s.disbursement
    account = c.distribution_account
    if account and not StrKey.is_valid_ed25519_public_key(account):
        p.append("disbursement.distribution_account: must be a G... account")
    issuers = {a.issuer for a in s.assets}
    if account and account in issuers:
        p.append(
            "disbursement.distribution_account: is the issuer of an asset; payouts leave from "
            "a separate hot wallet, never from the issuing account"
        )
    if not 1 <= c.max_ops_per_tx <= 100:
        p.append("disbursement.max_ops_per_tx: must be between 1 and 100")
    if not 100 <= c.max_fee_stroops <= 10_000_000:
        p.append("disbursement.max_fee_stroops: must be between 100 and 10000000")
    if not 5 <= c.tx_timeout_seconds <= 3600:
        p.append("disbursement.tx_timeout_seconds: must be between 5 and 3600")
    if not 1 <= c.max_tries <= 100:
        p.append("disbursement.max_tries: must be between 1 and 100")
    if not Decimal(1) <= c.channel_balance <= Decimal(1000):
        p.append("disbursement.channel_balance: must be between 1 and 1000 (XLM)")
    if c.direct_approval_above < 0 or c.low_balance < 0:
        p.append("disbursement.direct_approval_above and low_balance: must not be negative")
    if not 5 <= c.balance_check_seconds <= 86_400:
        p.append("disbursement.balance_check_seconds: must be between 5 and 86400")
    if c.distribution_secret is not None:
        seed = c.distribution_secret.reveal()
        if not StrKey.is_valid_ed25519_secret_seed(seed):
            p.append(
                "disbursement.distribution_secret: GATEWAY_DISBURSEMENT_DISTRIBUTION_SECRET "
                "is not a valid S... secret seed"
            )
        elif Keypair.from_secret(seed).public_key != account:
            p.append(
                "disbursement.distribution_secret: is not the secret of "
                "disbursement.distribution_account"
            )
    return p


def _validate_federation(s: Settings) -> list[str]:
    if s.seps.sep2 and not StrKey.is_valid_ed25519_public_key(s.federation_account):
        return [
            "federation.account: must be the G... account federation addresses pay "
            "(or set sep31.receiving_account)"
        ]
    return []


def _validate_sep31(s: Settings) -> list[str]:
    p: list[str] = []
    c = s.sep31
    if not s.seps.sep31:
        return p
    if not StrKey.is_valid_ed25519_public_key(c.receiving_account):
        p.append("sep31.receiving_account: must be the G... account sending anchors pay")
    for account in c.partner_accounts:
        if not StrKey.is_valid_ed25519_public_key(account):
            p.append(f"sep31.partner_accounts: {account[:60]!r} is not a G... account id")
    for domain in c.partner_domains:
        if not _HOST_RE.fullmatch(domain):
            p.append(f"sep31.partner_domains: {domain!r} is not a host name")
    if s.is_mainnet and not (c.partner_accounts or c.partner_domains):
        p.append(
            "sep31.partner_accounts: mainnet needs the sending anchors allowed to use "
            "SEP-31 (partner_accounts or partner_domains)"
        )
    if c.pending_sender_seconds < 60:
        p.append("sep31.pending_sender_seconds: must be at least 60")
    assets = {a.code: a for a in s.assets}
    seen: set[str] = set()
    for i, a in enumerate(c.assets):
        where = f"sep31.assets[{i}]"
        if a.code not in assets:
            p.append(f"{where}.code: {a.code} is not one of [[assets]]")
        if a.code in seen:
            p.append(f"{where}.code: {a.code} is listed twice")
        seen.add(a.code)
        if not a.funding_methods:
            p.append(f"{where}.funding_methods: list at least one (e.g. SEPA, SWIFT)")
        if a.fee_fixed < 0 or not 0 <= a.fee_percent < 100:
            p.append(f"{where}.fee_fixed: fees must be positive and under 100 percent")
        decimals = assets[a.code].decimals if a.code in assets else 7
        if a.fee_fixed != a.fee_fixed.quantize(Decimal(1).scaleb(-decimals)):
            p.append(f"{where}.fee_fixed: has more than {decimals} decimals")
    return p


def _validate_secrets(s: Settings) -> list[str]:
    p: list[str] = []
    if s.signing_secret is None:
        if s.is_mainnet:
            p.append("signing_secret: mainnet needs GATEWAY_SIGNING_SECRET (an S... secret seed)")
    elif not StrKey.is_valid_ed25519_secret_seed(s.signing_secret.reveal()):
        p.append("signing_secret: GATEWAY_SIGNING_SECRET is not a valid S... secret seed")
    if s.jwt_secret is None:
        if s.is_mainnet:
            p.append("jwt_secret: mainnet needs GATEWAY_JWT_SECRET (at least 32 bytes)")
    elif len(s.jwt_secret.reveal().encode()) < 32:
        p.append("jwt_secret: GATEWAY_JWT_SECRET must be at least 32 bytes")
    if s.kyc.key is None:
        if s.is_mainnet:
            p.append("kyc.key: mainnet needs GATEWAY_KYC_KEY (32 random bytes, base64)")
    elif not _is_kyc_key(s.kyc.key.reveal()):
        p.append("kyc.key: GATEWAY_KYC_KEY must be 32 random bytes in base64")
    if any(not _is_kyc_key(k.reveal()) for k in s.kyc.old_keys):
        p.append("kyc.old_keys: each of GATEWAY_KYC_OLD_KEYS must be 32 bytes in base64")
    if s.kyc.validation == "provider" and s.kyc.provider_secret is None:
        p.append("kyc.provider_secret: the KYC provider needs GATEWAY_KYC_PROVIDER_SECRET")
    return p


def _is_kyc_key(text: str) -> bool:
    import base64
    import binascii

    try:
        return len(base64.b64decode(text.strip(), validate=True)) == 32
    except (binascii.Error, ValueError):
        try:
            return len(base64.urlsafe_b64decode(text.strip())) == 32
        except (binascii.Error, ValueError):
            return False


_GENERATED: tuple[tuple[str, ...], ...] = (("signing_secret",), ("jwt_secret",), ("kyc", "key"))


def _get_secret(s: Settings, path: tuple[str, ...]) -> Secret | None:
    node: Any = s
    for key in path:
        node = getattr(node, key)
    return typing.cast(Secret | None, node)


def missing_testnet_secrets(s: Settings) -> list[str]:
    """Names of the secrets a testnet server will generate (or reload) at start."""
    return [env_name(path) for path in _GENERATED if _get_secret(s, path) is None]


def _new_secret(path: tuple[str, ...]) -> str:
    import base64
    import secrets as _secrets

    if path == ("signing_secret",):
        return Keypair.random().secret
    if path == ("kyc", "key"):
        return base64.b64encode(_secrets.token_bytes(32)).decode()
    return _secrets.token_urlsafe(48)


def with_generated_secrets(s: Settings, *, persist: bool = True) -> tuple[Settings, dict[str, str]]:
    """On testnet, fill missing secrets: from ``testnet_secrets_file`` when an earlier start
    wrote them there, else fresh random ones, which are then written to it (mode 0600) so
    data encrypted by this run stays readable after a restart.

    Returns the new settings and the filled values by environment name, so a parent process
    can hand the same values to its workers. Mainnet never gets generated secrets.
    ``persist=False`` (checks that run nothing) leaves the file alone.
    """
    if s.is_mainnet:
        return s, {}
    missing = [path for path in _GENERATED if _get_secret(s, path) is None]
    if not missing:
        return s, {}
    store = s.resolve_path(s.testnet_secrets_file)
    try:
        kept: dict[str, str] = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        kept = {}
    filled = {}
    for path in missing:
        name = env_name(path)
        filled[name] = kept.get(name) or _new_secret(path)
    if persist and any(kept.get(name) != value for name, value in filled.items()):
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({**kept, **filled}, out, indent=2)
        os.replace(tmp, store)
    changes: dict[str, Any] = {}
    kyc_changes: dict[str, Any] = {}
    for path in missing:
        value = Secret(filled[env_name(path)])
        if path[0] == "kyc":
            kyc_changes[path[1]] = value
        else:
            changes[path[0]] = value
    if kyc_changes:
        changes["kyc"] = dataclasses.replace(s.kyc, **kyc_changes)
    return dataclasses.replace(s, **changes), filled
