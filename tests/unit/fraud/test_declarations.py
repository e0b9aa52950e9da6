"""The fraud features under a configuration: the shop's own payment fields as features, and names that would clash."""

from __future__ import annotations

import pytest

from shoplake.config import ConfigError, load_config
from shoplake.fraud.declarations import FEATURE_NAMES, configured_feature_names, configured_features, resolve_features


def declared(fields: str):
    return load_config("local", [f"landing.extra_fields={{payments: [{fields}]}}"])


def test_without_own_fields_the_features_are_the_built_in_ones():
    assert configured_feature_names(load_config("local")) == FEATURE_NAMES


def test_a_feature_field_is_a_payment_feature_and_a_category_a_first_seen_one():
    cfg = declared("{name: risk, type: double, role: feature}, {name: ref, type: string, role: id}, "
                   "{name: channel, type: string, role: category}, {name: note, type: string, role: ignore}")  # fmt: skip
    extra = configured_features(cfg)[len(FEATURE_NAMES) :]
    assert [(f.name, f.kind, f.of) for f in extra] == [("risk", "payment", "risk"), ("new_channel_for_user", "first_seen", "channel")]
    assert [f.name for f in resolve_features(["risk", "amount"], cfg)] == ["risk", "amount"]
    with pytest.raises(KeyError, match="feature\\(s\\) vendor are neither built in nor given"):
        resolve_features(["amount", "vendor"], cfg)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ("{name: user_count_1h, type: long, role: feature}", ["landing.extra_fields.payments.0.name", "a built-in fraud feature"]),
        ("{name: risk, type: double, role: feature}, {name: label, type: long, role: feature}",
         ["landing.extra_fields.payments.1.name", "a column of the fraud tables"]),
        ("{name: device, type: string, role: category}", ["its feature new_device_for_user", "a built-in fraud feature"]),
    ],
)  # fmt: skip
def test_a_field_whose_feature_clashes_is_a_config_error_naming_the_key(fields, words):
    with pytest.raises(ConfigError) as err:
        configured_features(declared(fields))
    for word in words:
        assert word in str(err.value)
