"""The request body of ``POST /fraud/score`` under a configuration, and the features a served bundle reads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shoplake.config import load_config
from shoplake.fraud.bundle import FraudBundle
from shoplake.fraud.declarations import FEATURE_NAMES, configured_feature_names
from shoplake.fraud.models.base import FeatureMismatchError, RulesModel
from shoplake.fraud.serve import PaymentIn, online_features, payment_model

DECLARED = (
    "landing.extra_fields={payments: [{name: risk, type: double, role: feature, min: 0, max: 1}, "
    "{name: channel, type: string, role: category, values: [web, app]}, {name: terminal, type: long, role: id, required: true}]}"
)
BODY = {"payment_id": "p1", "user_id": "u1", "amount": 12.5, "card_id": "c1", "payment_ts": "2024-03-01T10:00:00+00:00"}


def bundle(names, metadata=None) -> FraudBundle:
    return FraudBundle(RulesModel(names, 300.0, 3), names, 0.5, 1.0, {"run_date": "2024-03-01", **(metadata or {})})


def test_without_own_fields_the_body_is_payment_in():
    assert payment_model(load_config("local")) is PaymentIn


def test_the_body_takes_the_declared_fields_typed_and_held_to_their_bounds():
    cfg = load_config("local", [DECLARED])
    model = payment_model(cfg, online_features(bundle(configured_feature_names(cfg)), cfg))
    payment = model.model_validate({**BODY, "risk": "0.25", "channel": "app", "terminal": 7})
    assert (payment.risk, payment.channel, payment.terminal) == (0.25, "app", 7)
    assert model.model_validate({**BODY, "terminal": 7}).risk is None  # optional: reads as 0, as in batch
    with pytest.raises(ValidationError) as err:
        model.model_validate({**BODY, "risk": 2, "channel": "fax", "coupon": "X"})
    wrong = {e["loc"][0]: e["type"] for e in err.value.errors()}
    assert wrong == {"risk": "less_than_equal", "channel": "literal_error", "terminal": "missing", "coupon": "extra_forbidden"}


def test_a_bundle_is_served_with_the_features_it_lists():
    cfg = load_config("local", [DECLARED])
    names = configured_feature_names(cfg)
    assert [f.name for f in online_features(bundle(names), cfg)] == list(names)
    # A model trained before the fields were declared is served with the built-in features.
    assert [f.name for f in online_features(bundle(FEATURE_NAMES), cfg)] == list(FEATURE_NAMES)
    # A feature the configuration no longer declares is an error naming it.
    with pytest.raises(FeatureMismatchError, match="feature\\(s\\) risk, new_channel_for_user are neither built in"):
        online_features(bundle(names), load_config("local"))


def test_a_joined_tables_features_come_with_the_request():
    cfg = load_config("local")
    names = (*FEATURE_NAMES, "vendor_score")
    served = bundle(names, {"feature_table": {"features": ["vendor_score"], "mode": "join"}})
    features = online_features(served, cfg)
    assert (features[-1].name, features[-1].kind) == ("vendor_score", "payment")
    model = payment_model(cfg, features)
    assert model.model_validate({**BODY, "vendor_score": 3}).vendor_score == 3.0
    with pytest.raises(ValidationError, match="vendor_score"):
        model.model_validate({**BODY, "vendor_score": "high"})
