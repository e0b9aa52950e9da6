"""The use cases as the platform finds them: declared through entry points, their tables in the catalog, their routes."""

from __future__ import annotations

import importlib

from fastapi import APIRouter

from shoplake.features.run import feature_nodes, feature_outputs
from shoplake.lake.catalog import all_specs
from shoplake.usecases import get_use_case, use_cases


def test_the_six_use_cases_are_found_in_nightly_order():
    assert [uc.name for uc in use_cases()] == ["recommend", "forecast", "fraud", "support", "categorize", "ads"]
    assert get_use_case("fraud").metrics_task == "fraud"


def test_every_use_case_table_is_in_the_catalog_once_and_owned_by_one_use_case():
    owned = [spec.full_name for uc in use_cases() for spec in uc.tables]
    assert len(owned) == len(set(owned))
    assert set(owned) <= {spec.full_name for spec in all_specs()}


def test_feature_nodes_write_only_tables_of_their_own_use_case():
    for uc in use_cases():
        for node in uc.feature_nodes:
            assert set(node.outputs) <= set(uc.tables), node.name
    assert len(feature_outputs()) == sum(len(n.outputs) for n in feature_nodes())


def test_declared_routes_are_routers_and_every_route_is_declared_once():
    paths = []
    for uc in use_cases():
        if uc.routes:
            module, _, name = uc.routes.partition(":")
            router = getattr(importlib.import_module(module), name)
            assert isinstance(router, APIRouter), uc.routes
            assert uc.holder is not None, uc.name
            paths += [route.path for route in router.routes]
    assert len(paths) == len(set(paths))
    assert {"/recommend", "/forecast", "/fraud/score", "/support/reply", "/categorize"} <= set(paths)
