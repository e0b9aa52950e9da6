"""The feature-node runner: which nodes can run, and a lake with nothing to build from."""

from __future__ import annotations

import datetime as dt

import pytest

from shoplake.features.run import FeatureInputError, FeatureNode, build_features


def _node(**kw) -> FeatureNode:
    return FeatureNode(name="n", outputs=(), compute=lambda ctx, day: {}, **kw)


def test_a_node_runs_with_all_of_required_and_one_of_any_of():
    node = _node(required=("orders",), any_of=("events", "payments"), optional={"products": "no text"})
    assert node.can_run({"orders", "events"})
    assert node.can_run({"orders", "payments", "products"})
    assert not node.can_run({"events", "payments"})
    assert not node.can_run({"orders", "products"})
    assert node.sources() == ("orders", "events", "payments", "products")
    assert _node(optional={"x": "y"}).can_run(set())


class _EmptyLake:
    root = "/nowhere"

    def version(self, spec):
        return None


def test_a_lake_without_any_input_names_the_bronze_tables_and_writes_nothing():
    nodes = [_node(required=("orders",)), _node(any_of=("events", "payments"))]
    with pytest.raises(FeatureInputError, match=r"none of bronze\.orders, bronze\.events, bronze\.payments in /nowhere"):
        build_features(None, _EmptyLake(), [dt.date(2024, 3, 1)], nodes=nodes)
    with pytest.raises(ValueError, match="no run dates"):
        build_features(None, _EmptyLake(), [], nodes=nodes)
