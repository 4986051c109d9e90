"""SEP-9 field rules (gateway.sep9) and the SEP-12 customer model (gateway.sep12_customer.model):
status per type, the GET /customer document, and per-amount type selection."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from gateway.sep9 import (
    BINARY_FIELDS,
    CATALOG,
    COUNTRIES_ALPHA3,
    VERIFIABLE_FIELDS,
    FieldError,
    normalize,
    sniff_file,
)
from gateway.sep12_customer import Status, select_type
from gateway.sep12_customer.model import Decision, Evaluation, Provided, document, evaluate
from gateway.settings import CustomerTypeSettings

# -- the catalog ----------------------------------------------------------------------------------


def test_catalog_names_are_flat_sep9_names_without_card_fields():
    assert not any(name.startswith("card.") for name in CATALOG)
    assert {n for n in CATALOG if n.startswith("organization.")} == {
        "organization.name",
        "organization.VAT_number",
        "organization.registration_number",
        "organization.registration_date",
        "organization.registered_address",
        "organization.number_of_shareholders",
        "organization.shareholder_name",
        "organization.photo_incorporation_doc",
        "organization.photo_proof_address",
        "organization.address_country_code",
        "organization.state_or_province",
        "organization.city",
        "organization.postal_code",
        "organization.director_name",
        "organization.website",
        "organization.email",
        "organization.phone",
    }
    assert all(spec.name == name for name, spec in CATALOG.items())
    assert CATALOG["occupation"].kind == "number"
    assert CATALOG["birth_date"].kind == CATALOG["id_expiration_date"].kind == "date"
    assert CATALOG["organization.registration_date"].kind == "string"
    assert VERIFIABLE_FIELDS == {"mobile_number", "email_address"}


def test_binary_fields_are_the_sep9_files():
    assert BINARY_FIELDS == {
        "photo_id_front",
        "photo_id_back",
        "notary_approval_of_photo_id",
        "photo_proof_residence",
        "proof_of_income",
        "photo_proof_of_income",
        "proof_of_liveness",
        "organization.photo_incorporation_doc",
        "organization.photo_proof_address",
    }


def test_countries_are_alpha3():
    assert len(COUNTRIES_ALPHA3) == 249
    assert all(len(c) == 3 and c.isupper() for c in COUNTRIES_ALPHA3)
    assert {"USA", "GBR", "MEX", "ARG"} <= COUNTRIES_ALPHA3


# -- normalize ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("first_name", "  Ada ", "Ada"),
        ("address_country_code", "usa", "USA"),
        ("birth_country_code", "GBR", "GBR"),
        ("organization.address_country_code", "mex", "MEX"),
        ("birth_date", "1815-12-10", "1815-12-10"),
        ("id_expiration_date", "2099-01-31", "2099-01-31"),
        ("id_issue_date", date.today().isoformat(), date.today().isoformat()),
        ("mobile_number", "+14155552671", "+14155552671"),
        ("bank_phone_number", "+5215512345678", "+5215512345678"),
        ("email_address", "ada.lovelace+kyc@example.co.uk", "ada.lovelace+kyc@example.co.uk"),
        ("organization.email", "ops@example.com", "ops@example.com"),
        ("language_code", "EN", "en"),
        ("occupation", 2511, "2511"),
        ("occupation", "25", "25"),
        ("organization.number_of_shareholders", "3", "3"),
        ("ip_address", "192.0.2.1", "192.0.2.1"),
        ("ip_address", "2001:DB8:0::1", "2001:db8::1"),
        ("sex", "other", "other"),
        ("id_type", "drivers_license", "drivers_license"),
        ("bank_account_type", "savings", "savings"),
        ("mobile_number_format", "hash", "hash"),
        ("address", "1 Row\nLondon", "1 Row\nLondon"),
        ("tax_id", 123456789, "123456789"),
    ],
)
def test_well_formed_values_are_normalized(name, raw, expected):
    assert normalize(name, raw) == expected


@pytest.mark.parametrize(
    ("name", "raw", "reason"),
    [
        ("address_country_code", "US", "must be an ISO 3166-1 alpha-3 country code, e.g. USA"),
        ("address_country_code", "XXX", "must be an ISO 3166-1 alpha-3 country code, e.g. USA"),
        ("birth_date", "1815-12-1", "must be an ISO 8601 date, YYYY-MM-DD"),
        ("birth_date", "18151210", "must be an ISO 8601 date, YYYY-MM-DD"),
        ("birth_date", "1815-12-10T00:00:00", "must be an ISO 8601 date, YYYY-MM-DD"),
        ("birth_date", "2023-02-29", "must be a real calendar date, YYYY-MM-DD"),
        ("birth_date", (date.today() + timedelta(days=1)).isoformat(), "must not be in the future"),
        ("id_issue_date", "2999-01-01", "must not be in the future"),
        ("mobile_number", "+0123456789", "must be an E.164 phone number, e.g. +14155552671"),
        ("mobile_number", "+1234567890123456", "must be an E.164 phone number, e.g. +14155552671"),
        ("mobile_number", "+12345", "must be an E.164 phone number, e.g. +14155552671"),
        ("mobile_money_number", "0044 7700", "must be an E.164 phone number, e.g. +14155552671"),
        ("email_address", "ada@localhost", "must be an email address, e.g. name@example.com"),
        ("email_address", "ada@@example.com", "must be an email address, e.g. name@example.com"),
        ("email_address", "a" * 260 + "@x.co", "must be at most 256 characters"),
        (
            "email_address",
            "a" * 64 + "@" + "b" * 186 + ".co",
            "must be an email address, e.g. name@example.com",
        ),
        ("language_code", "english", "must be an ISO 639-1 language code, e.g. en"),
        ("occupation", "25.1", "must be an ISCO-08 occupation code (digits)"),
        ("organization.number_of_shareholders", "-1", "must be a whole number"),
        ("ip_address", "localhost", "must be an IPv4 or IPv6 address"),
        ("sex", "Female", "must be one of male, female, other"),
        ("mobile_number_format", "e164", "must be one of E.164, hash"),
        ("first_name", "   ", "must not be empty"),
        ("first_name", None, "must be a string"),
        ("first_name", ["Ada"], "must be a string"),
        ("first_name", False, "must be a string"),
        ("first_name", "Ada\x00", "must not contain control characters"),
        ("first_name", "Ada\tLovelace\x1b", "must not contain control characters"),
        ("address", "x" * 1025, "must be at most 1024 characters"),
        ("photo_id_front", "aGk=", "is not a text field this server collects"),
        ("card.number", "4242424242424242", "is not a text field this server collects"),
        ("favourite_colour", "teal", "is not a text field this server collects"),
    ],
)
def test_malformed_values_are_refused_by_name_without_the_value(name, raw, reason):
    with pytest.raises(FieldError) as caught:
        normalize(name, raw)
    assert (caught.value.field, caught.value.reason) == (name, reason)
    assert str(caught.value) == f"{name}: {reason}"
    if isinstance(raw, str) and len(raw.strip()) > 3:
        assert raw.strip() not in str(caught.value)


def test_a_hashed_mobile_number_is_taken_as_sent():
    assert normalize("mobile_number", "a1b2c3", phone_format="hash") == "a1b2c3"
    with pytest.raises(FieldError):
        normalize("mobile_number", "a1b2c3", phone_format="E.164")
    with pytest.raises(FieldError):  # only mobile_number has a format field
        normalize("bank_phone_number", "a1b2c3", phone_format="hash")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xd8\xff\xe0rest", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\nrest", "image/png"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"GIF89a", None),
        (b"\x89PNG", None),
        (b"", None),
        (b"<html>%PDF-", None),
    ],
)
def test_files_are_recognised_by_their_magic_bytes(content, expected):
    assert sniff_file(content) == expected


# -- evaluate -----------------------------------------------------------------------------------

SENDER = CustomerTypeSettings(
    name="sender",
    direction="sender",
    description="Sender",
    required=("first_name", "last_name"),
    optional=("mobile_number",),
)
OK = Provided("ACCEPTED")


def test_validation_off_accepts_without_data():
    assert evaluate(SENDER, {}, None, 0, "off") == Evaluation(Status.ACCEPTED, (), None, False)


def test_missing_required_fields_need_info():
    ev = evaluate(SENDER, {"first_name": OK}, None, 1, "provider")
    assert ev == Evaluation(Status.NEEDS_INFO, ("last_name",), None, False)


def test_rejected_or_unverified_fields_need_info_even_when_optional():
    provided = {
        "first_name": Provided("REJECTED", "blurry"),
        "last_name": OK,
        "mobile_number": Provided("VERIFICATION_REQUIRED"),
    }
    ev = evaluate(SENDER, provided, None, 3, "auto")
    assert ev.status == Status.NEEDS_INFO
    assert ev.missing == ("first_name", "mobile_number")


def test_complete_data_is_due_for_review_until_a_decision_on_this_version():
    provided = {"first_name": OK, "last_name": OK}
    assert evaluate(SENDER, provided, None, 2, "provider") == Evaluation(
        Status.PROCESSING, (), None, True
    )
    stale = Decision("ACCEPTED", version=1)
    assert evaluate(SENDER, provided, stale, 2, "provider").status == Status.PROCESSING
    fresh = Decision("ACCEPTED", version=2)
    assert evaluate(SENDER, provided, fresh, 2, "provider") == Evaluation(
        Status.ACCEPTED, (), None, False
    )


def test_a_rejection_is_final_whatever_the_data():
    rejected = Decision("REJECTED", version=1, message="fraud")
    assert evaluate(SENDER, {}, rejected, 9, "provider") == Evaluation(
        Status.REJECTED, (), "fraud", False
    )
    assert evaluate(SENDER, {}, Decision("REJECTED", 1), 1, "auto").message == "Rejected"


def test_an_accepted_decision_does_not_hide_missing_fields():
    ev = evaluate(SENDER, {"first_name": OK}, Decision("ACCEPTED", 1), 1, "provider")
    assert ev.status == Status.NEEDS_INFO


# -- document -----------------------------------------------------------------------------------


def test_needs_info_document_lists_fields_and_has_no_id_for_unknown_customers():
    ev = Evaluation(Status.NEEDS_INFO, (), None, False)
    assert document(None, SENDER, ev, {}) == {
        "status": "NEEDS_INFO",
        "fields": {
            "first_name": {"type": "string", "description": "Given or first name"},
            "last_name": {"type": "string", "description": "Family or last name"},
            "mobile_number": {
                "type": "string",
                "description": "Mobile phone number in E.164 format",
                "optional": True,
            },
        },
    }


def test_document_shows_rejected_fields_with_their_error_in_both_maps():
    provided = {"first_name": Provided("REJECTED", "blurry"), "last_name": OK}
    ev = Evaluation(Status.NEEDS_INFO, ("first_name",), None, False)
    body = document("c1", SENDER, ev, provided)
    assert body["id"] == "c1" and body["status"] == "NEEDS_INFO"
    assert set(body["fields"]) == {"first_name", "mobile_number"}
    assert body["provided_fields"] == {
        "first_name": {
            "type": "string",
            "description": "Given or first name",
            "status": "REJECTED",
            "error": "blurry",
        },
        "last_name": {"type": "string", "description": "Family or last name", "status": "ACCEPTED"},
    }
    assert "message" not in body


def test_accepted_document_lists_no_fields_and_hides_fields_of_other_types():
    provided = {"first_name": OK, "last_name": OK, "bank_number": OK}
    body = document("c1", SENDER, Evaluation(Status.ACCEPTED, (), None, False), provided)
    assert body == {
        "id": "c1",
        "status": "ACCEPTED",
        "provided_fields": {
            "first_name": {
                "type": "string",
                "description": "Given or first name",
                "status": "ACCEPTED",
            },
            "last_name": {
                "type": "string",
                "description": "Family or last name",
                "status": "ACCEPTED",
            },
        },
    }


def test_rejected_document_carries_the_message():
    body = document(
        "c1", SENDER, Evaluation(Status.REJECTED, (), "fraud", False), {"first_name": OK}
    )
    assert body["status"] == "REJECTED" and body["message"] == "fraud"


def test_processing_document_lists_only_what_is_still_open():
    provided = {"first_name": Provided("PROCESSING"), "last_name": Provided("PROCESSING")}
    body = document("c1", SENDER, Evaluation(Status.PROCESSING, (), None, True), provided)
    assert body["status"] == "PROCESSING"
    assert list(body["fields"]) == ["mobile_number"]
    full = {**provided, "mobile_number": Provided("PROCESSING")}
    assert "fields" not in document(
        "c1", SENDER, Evaluation(Status.PROCESSING, (), None, True), full
    )


def test_choices_are_listed():
    spec = CustomerTypeSettings("t", "sender", "T", required=("sex",))
    body = document(None, spec, Evaluation(Status.NEEDS_INFO, (), None, False), {})
    assert body["fields"]["sex"]["choices"] == ["male", "female", "other"]


# -- per-amount type selection ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "asset", "amount", "expected"),
    [
        ("sender", "GWUSD", "0.01", "sep31-sender"),
        ("sender", "GWUSD", "999.99", "sep31-sender"),
        ("sender", "GWUSD", "1000", "sep31-large-sender"),
        ("sender", "GWUSD", "1000.00", "sep31-large-sender"),
        ("sender", "GWUSD", "10000", "sep31-large-sender"),
        ("receiver", "GWUSD", "999.9999999", "sep31-receiver"),
        ("receiver", "GWUSD", "1000", "sep31-large-receiver"),
        ("receiver", "GWUSD", "5000", "sep31-large-receiver"),
        ("sender", "USDC", "1000000", "sep31-sender"),
        ("receiver", "USDC", "1000000", "sep31-receiver"),
    ],
)
def test_testnet_types_by_amount(make_settings, direction, asset, amount, expected):
    types = make_settings().sep12.types
    chosen = select_type(types, direction, asset, Decimal(amount))
    assert chosen is not None and chosen.name == expected
    assert chosen.direction == direction


def test_the_highest_threshold_reached_wins():
    def t(name, **min_amount):
        return CustomerTypeSettings(
            name,
            "sender",
            name,
            required=("first_name",),
            min_amount={k: Decimal(v) for k, v in min_amount.items()},
        )

    types = [t("huge", USD="10000"), t("base"), t("large", USD="1000", EUR="900")]
    assert select_type(types, "sender", "USD", Decimal("9999.99")).name == "large"
    assert select_type(types, "sender", "USD", Decimal("10000")).name == "huge"
    assert select_type(types, "sender", "EUR", Decimal("10000")).name == "large"
    assert select_type(types, "sender", "GBP", Decimal("10000")).name == "base"
    assert select_type(types, "receiver", "USD", Decimal("1")) is None
    assert select_type([], "sender", "USD", Decimal("1")) is None
