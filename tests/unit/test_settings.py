from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gateway.settings import (
    PUBLIC_PASSPHRASE,
    ConfigError,
    Secret,
    env_name,
    load_settings,
    missing_testnet_secrets,
    setting_paths,
    with_generated_secrets,
)
from tests.conftest import (
    REPO,
    TEST_JWT_SECRET,
    TEST_SIGNING_SECRET,
    VERIFY_PHONE,
    write_config,
)

TESTNET = REPO / "config/testnet.toml"
MAINNET = REPO / "config/mainnet.toml"
MAINNET_SECRETS = {
    "GATEWAY_SIGNING_SECRET": TEST_SIGNING_SECRET,
    "GATEWAY_JWT_SECRET": TEST_JWT_SECRET,
    "GATEWAY_KYC_KEY": "a2V5LWZvci1rZXktZm9yLWtleS1mb3Ita2V5LWZvci0=",
    "GATEWAY_KYC_PROVIDER_SECRET": "provider-secret",
}


def problems_of(path: Path, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ)
    return info.value.problems


def test_shipped_testnet_config_loads_without_any_environment():
    s = load_settings(TESTNET, {})
    assert s.network == "testnet"
    assert s.signing_secret is None and s.jwt_secret is None
    assert s.web_auth_domain == "localhost:8000"
    assert s.assets[0].min_amount == Decimal("1")
    assert missing_testnet_secrets(s) == [
        "GATEWAY_SIGNING_SECRET",
        "GATEWAY_JWT_SECRET",
        "GATEWAY_KYC_KEY",
    ]


def test_shipped_mainnet_config_loads_with_its_secrets():
    s = load_settings(MAINNET, MAINNET_SECRETS)
    assert s.is_mainnet and s.network_passphrase == PUBLIC_PASSPHRASE


def test_config_path_comes_from_gateway_config(tmp_path):
    s = load_settings(None, {"GATEWAY_CONFIG": str(TESTNET)})
    assert s.config_dir == TESTNET.parent


def test_every_setting_has_a_distinct_environment_name():
    names = [env_name(p) for p in setting_paths()]
    assert len(names) == len(set(names))
    for fixed in (
        "GATEWAY_SIGNING_SECRET",
        "GATEWAY_JWT_SECRET",
        "GATEWAY_DATABASE_URL",
        "GATEWAY_HOME_DOMAIN",
        "GATEWAY_BASE_URL",
        "GATEWAY_HORIZON_URL",
    ):
        assert fixed in names


def test_environment_overrides_any_setting_with_typed_values():
    s = load_settings(
        TESTNET,
        {
            "GATEWAY_HORIZON_URL": "http://localhost:8100",
            "GATEWAY_HOME_DOMAIN": "anchor.test",
            "GATEWAY_BASE_URL": "https://anchor.test",
            "GATEWAY_DATABASE_URL": "postgresql+asyncpg://u@h/db",
            "GATEWAY_SEP10_JWT_LIFETIME_SECONDS": "120",
            "GATEWAY_HORIZON_PUBLISH": "false",
            "GATEWAY_OUTBOUND_INSECURE_HOSTS": "localhost, toml.test",
            "GATEWAY_ASSETS": '[{"code": "GWUSD", "issuer": '
            '"GACKTGJUGPKHDQQTLAFUZLT4EEK6ZBEGA5RRM53VBDAOROXSZSIY43FZ"}, {"code": "EURT", '
            '"issuer": "GACKTGJUGPKHDQQTLAFUZLT4EEK6ZBEGA5RRM53VBDAOROXSZSIY43FZ", "decimals": 2}]',
        },
    )
    assert s.horizon.url == "http://localhost:8100"
    assert s.home_domain == "anchor.test"
    assert s.base_url == "https://anchor.test"
    assert s.database.url == "postgresql+asyncpg://u@h/db"
    assert s.sep10.jwt_lifetime_seconds == 120
    assert s.horizon.publish is False
    assert s.outbound.insecure_hosts == ("localhost", "toml.test")
    assert [a.code for a in s.assets] == ["GWUSD", "EURT"]


def test_badly_typed_override_names_the_setting_and_variable():
    problems = problems_of(TESTNET, {"GATEWAY_SEP10_JWT_LIFETIME_SECONDS": "soon"})
    assert problems == [
        "sep10.jwt_lifetime_seconds: must be an integer from "
        "GATEWAY_SEP10_JWT_LIFETIME_SECONDS (got 'soon')"
    ]


def test_unknown_settings_are_refused(tmp_path):
    body = TESTNET.read_text() + "\n[sep10x]\nfoo = 1\n"
    path = write_config(
        tmp_path,
        body.replace(
            'home_domain = "localhost:8000"', 'home_domain = "localhost:8000"\nhome_domian = 1'
        ),
    )
    problems = problems_of(path, {})
    assert "home_domian: unknown setting" in problems
    assert "sep10x: unknown setting" in problems


def test_secrets_in_the_toml_are_refused_without_echoing_them(tmp_path):
    path = write_config(
        tmp_path, f'signing_secret = "{TEST_SIGNING_SECRET}"\n' + TESTNET.read_text()
    )
    problems = problems_of(path, {})
    assert len(problems) == 1
    assert problems[0].startswith("signing_secret: secrets come only from the environment")
    assert TEST_SIGNING_SECRET not in problems[0]


def test_invalid_secret_values_are_reported_without_echoing_them():
    problems = problems_of(
        TESTNET, {"GATEWAY_SIGNING_SECRET": "SNOTASECRET", "GATEWAY_JWT_SECRET": "short"}
    )
    assert problems == [
        "signing_secret: GATEWAY_SIGNING_SECRET is not a valid S... secret seed",
        "jwt_secret: GATEWAY_JWT_SECRET must be at least 32 bytes",
    ]


def test_secret_never_prints_itself():
    s = load_settings(TESTNET, {"GATEWAY_JWT_SECRET": TEST_JWT_SECRET})
    assert TEST_JWT_SECRET not in repr(s)
    assert TEST_JWT_SECRET not in str(s.jwt_secret)
    assert s.jwt_secret == Secret(TEST_JWT_SECRET)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"GATEWAY_SIGNING_SECRET": ""}, "signing_secret: mainnet needs GATEWAY_SIGNING_SECRET"),
        ({"GATEWAY_JWT_SECRET": ""}, "jwt_secret: mainnet needs GATEWAY_JWT_SECRET"),
        ({"GATEWAY_HORIZON_URL": "https://horizon-testnet.stellar.org"}, "horizon.url: mainnet"),
        (
            {"GATEWAY_NETWORK_PASSPHRASE": "Test SDF Network ; September 2015"},
            "network_passphrase: mainnet needs the public network passphrase",
        ),
        ({"GATEWAY_DATABASE_URL": "sqlite+aiosqlite:///x.db"}, "database.url: mainnet needs"),
        ({"GATEWAY_BASE_URL": "http://anchor.example.com"}, "base_url: mainnet needs an https"),
        ({"GATEWAY_KYC_VALIDATION": "off"}, "kyc.validation: mainnet refuses 'off'"),
        ({"GATEWAY_KYC_VALIDATION": "auto"}, "kyc.validation: mainnet refuses 'auto'"),
        ({"GATEWAY_OUTBOUND_INSECURE_HOSTS": "localhost"}, "outbound.insecure_hosts: must be"),
        (
            {"GATEWAY_OUTBOUND_INSECURE_CALLBACK_HOSTS": "localhost"},
            "outbound.insecure_callback_hosts: must be empty on mainnet",
        ),
        (
            VERIFY_PHONE,
            "sep12.notifier: mainnet needs a real SMS/email notifier",
        ),
        ({"GATEWAY_SEPS_SEP3": "true"}, "sep3.sanctions_list: mainnet needs a sanctions list"),
        ({"GATEWAY_DISBURSEMENT_APPROVALS": "0"}, "disbursement.approvals: mainnet needs"),
    ],
)
def test_mainnet_refuses_unsafe_settings_with_one_line_naming_the_setting(override, expected):
    environ = {**MAINNET_SECRETS, **override}
    environ = {k: v for k, v in environ.items() if v != ""}
    problems = problems_of(MAINNET, environ)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)
    assert "\n" not in problems[0]


def test_testnet_refuses_the_public_passphrase():
    problems = problems_of(TESTNET, {"GATEWAY_NETWORK_PASSPHRASE": PUBLIC_PASSPHRASE})
    assert problems == ["network_passphrase: testnet needs the testnet (or futurenet) passphrase"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"GATEWAY_BASE_URL": "http://localhost:8000/"}, "base_url: must not end with '/'"),
        ({"GATEWAY_BASE_URL": "localhost:8000"}, "base_url: must be an absolute http(s) URL"),
        ({"GATEWAY_HOME_DOMAIN": "https://x.test"}, "home_domain: must be a lower-case host"),
        ({"GATEWAY_HOME_DOMAIN": "Anchor.test"}, "home_domain: must be a lower-case host"),
        ({"GATEWAY_HOME_DOMAIN": "x.test\n"}, "home_domain: must be a lower-case host"),
        ({"GATEWAY_BASE_URL": "https://u:p@anchor.test"}, "base_url: must not carry user"),
        ({"GATEWAY_BASE_URL": "https://anchor.test/gw"}, "base_url: must be scheme://host"),
        ({"GATEWAY_BASE_URL": "https://anchor.test:99999"}, "base_url: has an invalid port"),
        ({"GATEWAY_HORIZON_TIMEOUT_SECONDS": "nan"}, "horizon.timeout_seconds: must be a finite"),
        ({"GATEWAY_OUTBOUND_TIMEOUT_SECONDS": "inf"}, "outbound.timeout_seconds: must be a fin"),
        ({"GATEWAY_DATABASE_URL": "sqlite+aiosqlite:///:memory:"}, "database.url: an in-memory"),
        ({"GATEWAY_HORIZON_URL": "https://h.test/API-KEY"}, "horizon.publish: horizon.url has"),
        ({"GATEWAY_JWT_SECRETS": "x" * 40}, "GATEWAY_JWT_SECRETS: not a setting"),
        ({"GATEWAY_HOME_DOMAIN": "a" * 60 + ".test"}, "home_domain: "),
        ({"GATEWAY_DATABASE_URL": "mysql://x"}, "database.url: must start with"),
        ({"GATEWAY_SEP10_CLIENT_DOMAIN": "maybe"}, "sep10.client_domain: must be one of"),
        ({"GATEWAY_ACCOUNTS": "GABC"}, "accounts: 'GABC' is not a G... account id"),
        ({"GATEWAY_FEDERATION_ACCOUNT": "GABC"}, "federation.account: must be the G... account"),
        (
            {
                "GATEWAY_FEDERATION_ACCOUNT": "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC"
            },
            "federation.account: with sep3 on it must be sep31.receiving_account",
        ),
        ({"GATEWAY_SEP3_SANCTIONS_LIST": "nowhere.json"}, "sep3.sanctions_list: nowhere.json is"),
        ({"GATEWAY_SEP3_PENDING_SECONDS": "0"}, "sep3.pending_seconds: must be between"),
        (
            {
                "GATEWAY_DISBURSEMENT_DISTRIBUTION_ACCOUNT": (
                    "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC"
                )
            },
            "disbursement.distribution_account: is the issuer of an asset",
        ),
        (
            {"GATEWAY_DISBURSEMENT_DISTRIBUTION_ACCOUNT": "GABC"},
            "disbursement.distribution_account: must be a G... account",
        ),
        ({"GATEWAY_DISBURSEMENT_MAX_OPS_PER_TX": "101"}, "disbursement.max_ops_per_tx: must be"),
        ({"GATEWAY_DISBURSEMENT_APPROVALS": "11"}, "disbursement.approvals: must be between"),
        (
            {"GATEWAY_SEP3_SHARE_WITH": '[{"domain": "Bank.test", "signing_key": "G"}]'},
            "sep3.share_with[0].signing_key: must be a G... key",
        ),
        (
            {"GATEWAY_SEPS_SEP31": "false", "GATEWAY_SEP31_RECEIVING_ACCOUNT": ""},
            "federation.account: must be the G... account",
        ),
    ],
)
def test_malformed_settings_are_refused(override, expected):
    problems = problems_of(TESTNET, override)
    assert any(p.startswith(expected) for p in problems), problems


def test_asset_rules(tmp_path):
    body = TESTNET.read_text().replace('min_amount = "1"', 'min_amount = "20000"')
    body += '\n[[assets]]\ncode = "GWUSD"\nissuer = "GBAD"\ndecimals = 9\n'
    problems = problems_of(write_config(tmp_path, body), {})
    assert "assets[0].min_amount: is greater than max_amount" in problems
    assert "assets[1].code: GWUSD is listed twice" in problems
    assert "assets[1].issuer: must be a G... account id" in problems
    assert "assets[1].decimals: must be between 0 and 7" in problems


def test_missing_or_broken_config_file_is_one_clear_line(tmp_path):
    assert problems_of(tmp_path / "nope.toml", {}) == [
        f"GATEWAY_CONFIG: config file {tmp_path / 'nope.toml'} does not exist"
    ]
    broken = write_config(tmp_path, "network = ")
    assert problems_of(broken, {})[0].startswith(f"GATEWAY_CONFIG: {broken} is not valid TOML")


def test_testnet_generates_missing_secrets_once_and_mainnet_never_does(tmp_path):
    store = tmp_path / "secrets.json"
    env = {"GATEWAY_TESTNET_SECRETS_FILE": str(store)}
    s, generated = with_generated_secrets(load_settings(TESTNET, env))
    assert set(generated) == {"GATEWAY_SIGNING_SECRET", "GATEWAY_JWT_SECRET", "GATEWAY_KYC_KEY"}
    assert s.signing_keypair.secret == generated["GATEWAY_SIGNING_SECRET"]
    assert s.kyc.key == Secret(generated["GATEWAY_KYC_KEY"])
    assert store.stat().st_mode & 0o777 == 0o600
    # A restart reads the same secrets back instead of making new ones.
    again, reloaded = with_generated_secrets(load_settings(TESTNET, env))
    assert reloaded == generated
    assert again.signing_keypair.public_key == s.signing_keypair.public_key
    # Secrets given in the environment win and are not stored.
    given = {**env, "GATEWAY_JWT_SECRET": "j" * 40}
    mixed, filled = with_generated_secrets(load_settings(TESTNET, given))
    assert "GATEWAY_JWT_SECRET" not in filled and mixed.jwt_secret == Secret("j" * 40)
    main = load_settings(MAINNET, MAINNET_SECRETS)
    assert with_generated_secrets(main) == (main, {})


def test_database_commands_load_mainnet_settings_without_secrets():
    s = load_settings(MAINNET, {}, check_secrets=False)
    assert s.signing_secret is None


def test_nan_in_the_toml_itself_is_refused(tmp_path):
    body = TESTNET.read_text().replace(
        'horizon-testnet.stellar.org"\ntimeout_seconds = 10.0',
        'horizon-testnet.stellar.org"\ntimeout_seconds = nan',
    )
    assert problems_of(write_config(tmp_path, body), {}) == [
        "horizon.timeout_seconds: must be a finite number (got 'nan')"
    ]


@pytest.mark.parametrize(
    ("base_url", "web_auth_domain"),
    [
        ("http://localhost:8000", "localhost:8000"),
        ("https://Anchor.Example.com:443", "anchor.example.com"),
        ("http://anchor.test:80", "anchor.test"),
        ("https://anchor.test:8443", "anchor.test:8443"),
    ],
)
def test_web_auth_domain_is_the_url_host(base_url, web_auth_domain):
    s = load_settings(TESTNET, {"GATEWAY_BASE_URL": base_url})
    assert s.web_auth_domain == web_auth_domain


def test_non_setting_gateway_variables_are_allowed():
    s = load_settings(TESTNET, {"GATEWAY_LOG_LEVEL": "debug", "GATEWAY_SANDBOX_HORIZON": "never"})
    assert s.network == "testnet"


def test_readiness_thresholds_are_read_and_checked():
    s = load_settings(TESTNET, {"GATEWAY_OBSERVABILITY_WATCHER_MAX_LAG_SECONDS": "120"})
    assert s.observability.watcher_max_lag_seconds == 120
    assert s.observability.outbox_max_overdue_seconds == 600
    assert problems_of(
        TESTNET,
        {
            "GATEWAY_OBSERVABILITY_CHECK_TIMEOUT_SECONDS": "0",
            "GATEWAY_OBSERVABILITY_WATCHER_MAX_LAG_SECONDS": "5",
            "GATEWAY_OBSERVABILITY_OUTBOX_MAX_OVERDUE_SECONDS": "10",
        },
    ) == [
        "observability.check_timeout_seconds: must be between 0 and 30",
        "observability.watcher_max_lag_seconds: must be between 10 and 86400",
        "observability.outbox_max_overdue_seconds: must be between 30 and 86400",
    ]
