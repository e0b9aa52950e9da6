"""A shop's own landing fields: the grown contract and the configuration errors that name the key."""

from __future__ import annotations

import pytest

from shoplake.config import ConfigError, load_config
from shoplake.ingest.bronze import BRONZE, configured_bronze
from shoplake.ingest.landing import CATEGORY, FEATURE, ID, PAYMENTS, ExtraField, configured_source, with_extra_fields

RISK = ExtraField("risk_score", "double", FEATURE, description="Vendor risk score.", min=0, max=1)
CHANNEL = ExtraField("channel", "string", CATEGORY, values=("web", "app"))
DECLARED = (
    "landing.extra_fields={payments: [{name: risk_score, type: double, role: feature, min: 0, max: 1}, "
    "{name: channel, type: string, role: category}, {name: terminal, type: long, role: id, required: true}]}"
)


def test_the_contract_grows_by_the_declared_fields_in_order():
    grown = with_extra_fields(PAYMENTS, (RISK, CHANNEL))
    assert grown.field_names == [*PAYMENTS.field_names, "risk_score", "channel"]
    assert [f.role for f in grown.extra_fields] == [FEATURE, CATEGORY]
    assert grown.fields_of_role(FEATURE) == (grown.fields[-2],)
    assert grown.required_fields == PAYMENTS.required_fields
    checks = {(c.field, c.message) for c in grown.checks} - {(c.field, c.message) for c in PAYMENTS.checks}
    assert checks == {
        ("risk_score", "must be >= 0"),
        ("risk_score", "must be <= 1"),
        ("channel", "unknown value, expected one of web, app"),
    }
    assert with_extra_fields(PAYMENTS, ()) is PAYMENTS


def test_the_bronze_spec_grows_with_nullable_columns_and_the_catalog_keeps_the_contract():
    cfg = load_config("local", [DECLARED])
    spec = configured_bronze(cfg, "payments")
    assert spec.full_name == BRONZE["payments"].full_name
    added = [c for c in spec.columns if c.name not in BRONZE["payments"].column_names]
    assert [(c.name, c.dtype, c.nullable) for c in added] == [
        ("risk_score", "double", True),
        ("channel", "string", True),
        ("terminal", "long", True),
    ]
    # A required field is still quarantined when empty: only its bronze column is nullable, so an older table can grow it.
    assert "terminal" in configured_source(cfg, "payments").required_fields
    assert configured_bronze(cfg, "orders") is BRONZE["orders"]


@pytest.mark.parametrize(
    ("declared", "words"),
    [
        (
            "{payments: [{name: amount, type: double, role: feature}]}",
            ["landing.extra_fields.payments.0.name", "'amount' is a field of the payments contract"],
        ),
        ("{payments: [{name: run_date, type: string, role: ignore}]}", ["landing.extra_fields.payments.0.name", "run_date"]),
        ("{payments: [{name: _hidden, type: string, role: ignore}]}", ["landing.extra_fields.payments.0.name", "must start with a letter"]),
        (
            "{payments: [{name: a, type: double, role: feature}, {name: a, type: long, role: id}]}",
            ["landing.extra_fields.payments.1.name", "declared twice"],
        ),
        ("{payments: [{name: note, type: string, role: feature}]}", ["landing.extra_fields.payments.0.type", "a feature field is one of"]),
        ("{payments: [{name: note, type: string, role: weight}]}", ["landing.extra_fields.payments.0.role", "unknown role 'weight'"]),
        ("{payments: [{name: note, type: text, role: ignore}]}", ["landing.extra_fields.payments.0.type", "'text'"]),
        ("{payments: [{name: level, type: string, role: category, min: 1}]}", ["landing.extra_fields.payments.0.min", "for numbers"]),
        ("{payment: [{name: level, type: string, role: category}]}", ["landing.extra_fields.payment", "unknown landing source"]),
        ("{payments: [{name: level, type: string, role: category, colour: red}]}", ["landing.extra_fields.payments.0.colour"]),
    ],
)
def test_a_bad_declaration_is_a_config_error_naming_the_key(declared, words):
    with pytest.raises(ConfigError) as err:
        load_config("local", [f"landing.extra_fields={declared}"])
    for word in words:
        assert word in str(err.value)


def test_a_clash_is_refused_without_the_configuration_too():
    with pytest.raises(ValueError, match="payments field 'card_id', name: 'card_id' is a field of the payments contract"):
        with_extra_fields(PAYMENTS, (ExtraField("card_id", "string", ID),))
