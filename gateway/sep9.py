"""SEP-9 standard KYC fields: the catalog this gateway collects and the rule for each value.

Pure data and functions. ``card.*`` fields are deliberately absent: holding card numbers
would put the gateway in PCI scope, so they are refused like any unknown field.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

FieldKind = Literal["string", "number", "date", "binary"]

COUNTRIES_ALPHA3 = frozenset(
    """
    AFG ALA ALB DZA ASM AND AGO AIA ATA ATG ARG ARM ABW AUS AUT AZE BHS BHR BGD BRB BLR BEL
    BLZ BEN BMU BTN BOL BES BIH BWA BVT BRA IOT BRN BGR BFA BDI CPV KHM CMR CAN CYM CAF TCD
    CHL CHN CXR CCK COL COM COG COD COK CRI CIV HRV CUB CUW CYP CZE DNK DJI DMA DOM ECU EGY
    SLV GNQ ERI EST SWZ ETH FLK FRO FJI FIN FRA GUF PYF ATF GAB GMB GEO DEU GHA GIB GRC GRL
    GRD GLP GUM GTM GGY GIN GNB GUY HTI HMD VAT HND HKG HUN ISL IND IDN IRN IRQ IRL IMN ISR
    ITA JAM JPN JEY JOR KAZ KEN KIR PRK KOR KWT KGZ LAO LVA LBN LSO LBR LBY LIE LTU LUX MAC
    MDG MWI MYS MDV MLI MLT MHL MTQ MRT MUS MYT MEX FSM MDA MCO MNG MNE MSR MAR MOZ MMR NAM
    NRU NPL NLD NCL NZL NIC NER NGA NIU NFK MKD MNP NOR OMN PAK PLW PSE PAN PNG PRY PER PHL
    PCN POL PRT PRI QAT REU ROU RUS RWA BLM SHN KNA LCA MAF SPM VCT WSM SMR STP SAU SEN SRB
    SYC SLE SGP SXM SVK SVN SLB SOM ZAF SGS SSD ESP LKA SDN SUR SJM SWE CHE SYR TWN TJK TZA
    THA TLS TGO TKL TON TTO TUN TUR TKM TCA TUV UGA UKR ARE GBR USA UMI URY UZB VUT VEN VNM
    VGB VIR WLF ESH YEM ZMB ZWE
    """.split()
)

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_LANG = re.compile(r"[a-z]{2}")
_ISCO = re.compile(r"[0-9]{1,4}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# Binary content the gateway accepts, by magic number.
FILE_TYPES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"%PDF-", "application/pdf"),
)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: FieldKind
    description: str
    rule: str = "text"  # text | long_text | country | date | past_date | phone | email | ...
    choices: tuple[str, ...] = ()


def _f(
    name: str, kind: FieldKind, description: str, rule: str = "text", choices: tuple[str, ...] = ()
) -> FieldSpec:
    return FieldSpec(name, kind, description, rule, choices)


_ORGANIZATION = [
    _f("organization.name", "string", "Full organization name"),
    _f("organization.VAT_number", "string", "Organization VAT number"),
    _f("organization.registration_number", "string", "Organization registration number"),
    _f("organization.registration_date", "string", "Date the organization was registered"),
    _f("organization.registered_address", "string", "Organization registered address", "long_text"),
    _f("organization.number_of_shareholders", "number", "Number of shareholders", "count"),
    _f("organization.shareholder_name", "string", "Name of a shareholder"),
    _f("organization.photo_incorporation_doc", "binary", "Image of the incorporation document"),
    _f(
        "organization.photo_proof_address", "binary", "Image of the organization's proof of address"
    ),
    _f(
        "organization.address_country_code",
        "string",
        "Country of the organization (ISO 3166-1 alpha-3)",
        "country",
    ),
    _f("organization.state_or_province", "string", "State or province of the organization"),
    _f("organization.city", "string", "City of the organization"),
    _f("organization.postal_code", "string", "Postal code of the organization"),
    _f("organization.director_name", "string", "Organization director's name"),
    _f("organization.website", "string", "Organization website"),
    _f("organization.email", "string", "Organization contact email", "email"),
    _f("organization.phone", "string", "Organization contact phone (E.164)", "phone"),
]

CATALOG: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in [
        _f("family_name", "string", "Family or last name"),
        _f("last_name", "string", "Family or last name"),
        _f("given_name", "string", "Given or first name"),
        _f("first_name", "string", "Given or first name"),
        _f("additional_name", "string", "Middle name or other additional name"),
        _f(
            "address_country_code", "string", "Country of residence (ISO 3166-1 alpha-3)", "country"
        ),
        _f("state_or_province", "string", "State, province or region of residence"),
        _f("city", "string", "City of residence"),
        _f("postal_code", "string", "Postal or ZIP code of residence"),
        _f("address", "string", "Full residential address", "long_text"),
        _f("mobile_number", "string", "Mobile phone number in E.164 format", "phone"),
        _f(
            "mobile_number_format", "string", "Format of mobile_number", "choice", ("E.164", "hash")
        ),
        _f("email_address", "string", "Email address", "email"),
        _f("birth_date", "date", "Date of birth (YYYY-MM-DD)", "past_date"),
        _f("birth_place", "string", "Place of birth (city, state, country)"),
        _f("birth_country_code", "string", "Country of birth (ISO 3166-1 alpha-3)", "country"),
        _f("tax_id", "string", "Tax identifier of the customer in their country"),
        _f("tax_id_name", "string", "Name of the tax identifier (e.g. SSN, ITIN)"),
        _f("occupation", "number", "Occupation (ISCO-08 code)", "isco"),
        _f("employer_name", "string", "Name of the employer"),
        _f("employer_address", "string", "Address of the employer", "long_text"),
        _f("language_code", "string", "Preferred language (ISO 639-1)", "language"),
        _f(
            "id_type",
            "string",
            "Type of identity document",
            "choice",
            ("passport", "drivers_license", "id_card"),
        ),
        _f(
            "id_country_code",
            "string",
            "Country that issued the identity document (ISO 3166-1 alpha-3)",
            "country",
        ),
        _f(
            "id_issue_date", "date", "Issue date of the identity document (YYYY-MM-DD)", "past_date"
        ),
        _f(
            "id_expiration_date",
            "date",
            "Expiration date of the identity document (YYYY-MM-DD)",
            "date",
        ),
        _f("id_number", "string", "Number of the identity document"),
        _f("photo_id_front", "binary", "Image of the front of the identity document"),
        _f("photo_id_back", "binary", "Image of the back of the identity document"),
        _f(
            "notary_approval_of_photo_id",
            "binary",
            "Image of a notary's approval of the identity document",
        ),
        _f("ip_address", "string", "IP address of the customer's computer", "ip"),
        _f(
            "photo_proof_residence",
            "binary",
            "Image of a utility bill or bank statement with the customer's name and address",
        ),
        _f("sex", "string", "Sex", "choice", ("male", "female", "other")),
        _f("proof_of_income", "binary", "Image of a proof of income"),
        _f("photo_proof_of_income", "binary", "Image of a proof of income"),
        _f("proof_of_liveness", "binary", "Video or image of the customer as proof of liveness"),
        _f("referral_id", "string", "Referral code of the customer"),
        _f("bank_name", "string", "Name of the bank"),
        _f(
            "bank_account_type", "string", "Type of bank account", "choice", ("checking", "savings")
        ),
        _f("bank_account_number", "string", "Number identifying the bank account"),
        _f("bank_number", "string", "Number identifying the bank (routing number in the US)"),
        _f("bank_phone_number", "string", "Phone number with the bank's country code", "phone"),
        _f("bank_branch_number", "string", "Number identifying the bank branch"),
        _f("external_transfer_memo", "string", "Destination tag or memo of the external account"),
        _f("clabe_number", "string", "Bank account number in Mexico (CLABE)"),
        _f("cbu_number", "string", "Bank account number in Argentina (CBU or CVU)"),
        _f("cbu_alias", "string", "Alias of a CBU or CVU"),
        _f("mobile_money_number", "string", "Mobile money number in E.164 format", "phone"),
        _f("mobile_money_provider", "string", "Name of the mobile money provider"),
        _f("crypto_address", "string", "Address of a cryptocurrency account"),
        _f("crypto_memo", "string", "Memo or destination tag of a cryptocurrency account"),
        *_ORGANIZATION,
    ]
}

BINARY_FIELDS = frozenset(name for name, spec in CATALOG.items() if spec.kind == "binary")
VERIFIABLE_FIELDS = frozenset({"mobile_number", "email_address"})
_MAX_TEXT = 256
_MAX_LONG_TEXT = 1024


class FieldError(ValueError):
    """A value breaks its field's rule; ``reason`` is client-facing and holds no value."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def normalize(name: str, raw: object, *, phone_format: str | None = None) -> str:
    """The canonical text of a non-binary field value, or FieldError. Error messages never
    repeat the value (it is personal data)."""
    spec = CATALOG.get(name)
    if spec is None or spec.kind == "binary":
        raise FieldError(name, "is not a text field this server collects")
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise FieldError(name, "must be a string")
    value = str(raw).strip()
    if not value:
        raise FieldError(name, "must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldError(name, "must be valid text") from None
    if "\ufffd" in value:
        # What a decoder leaves for bytes that were not UTF-8: the value was mangled in transit.
        raise FieldError(name, "must be valid UTF-8 text")
    rule = spec.rule
    limit = _MAX_LONG_TEXT if rule == "long_text" else _MAX_TEXT
    if len(value) > limit:
        raise FieldError(name, f"must be at most {limit} characters")
    if _CONTROL.search(value) or (rule != "long_text" and "\n" in value):
        raise FieldError(name, "must not contain control characters")
    if rule == "country":
        if value.upper() not in COUNTRIES_ALPHA3:
            raise FieldError(name, "must be an ISO 3166-1 alpha-3 country code, e.g. USA")
        return value.upper()
    if rule in ("date", "past_date"):
        if not _DATE.fullmatch(value):
            raise FieldError(name, "must be an ISO 8601 date, YYYY-MM-DD")
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise FieldError(name, "must be a real calendar date, YYYY-MM-DD") from None
        if rule == "past_date" and day > date.today():
            raise FieldError(name, "must not be in the future")
        return value
    if rule == "phone":
        if name == "mobile_number" and phone_format == "hash":
            return value
        if not _E164.fullmatch(value):
            raise FieldError(name, "must be an E.164 phone number, e.g. +14155552671")
        return value
    if rule == "email":
        if len(value) > 254 or not _EMAIL.fullmatch(value):
            raise FieldError(name, "must be an email address, e.g. name@example.com")
        return value
    if rule == "language":
        if not _LANG.fullmatch(value.lower()):
            raise FieldError(name, "must be an ISO 639-1 language code, e.g. en")
        return value.lower()
    if rule == "isco":
        if not _ISCO.fullmatch(value):
            raise FieldError(name, "must be an ISCO-08 occupation code (digits)")
        return value
    if rule == "count":
        if not value.isdigit():
            raise FieldError(name, "must be a whole number")
        return value
    if rule == "ip":
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise FieldError(name, "must be an IPv4 or IPv6 address") from None
    if rule == "choice":
        if value not in spec.choices:
            raise FieldError(name, "must be one of " + ", ".join(spec.choices))
        return value
    return value


def sniff_file(content: bytes) -> str | None:
    """The content type of an accepted file (JPEG, PNG, PDF), from its first bytes."""
    for magic, content_type in FILE_TYPES:
        if content.startswith(magic):
            return content_type
    return None
