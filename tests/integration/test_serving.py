"""The Serve application answers over HTTP on 127.0.0.1."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from helpers import get_json


@pytest.fixture
def served(serve_url, cfg):
    from ray import serve

    from shoplake.serve.app import build_app

    serve.run(build_app({"env": "local", "overrides": [f"lake.root={cfg.lake.root}"]}), name="shoplake", route_prefix="/")
    yield serve_url
    serve.delete("shoplake")


def test_health_and_tables_over_http(served, cfg, lake, ray_local):
    import datetime as dt

    import psutil

    status, body = get_json(f"{served}/health")
    assert status == 200
    # The configured ingress: HAProxy, started under this process's Ray instance, in front of the replica.
    assert any(p.name() == "haproxy" for p in psutil.Process().children(recursive=True))
    assert {k: body[k] for k in ("status", "env", "lake")} == {"status": "ok", "env": "local", "lake": cfg.lake.root}
    assert body["model"]["loaded"] is False  # nothing registered in this lake
    assert get_json(f"{served}/lake/tables") == (200, [])
    now = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    row = {
        "table_name": "bronze.orders",
        "table_version": 0,
        "run_date": dt.date(2024, 1, 1),
        "column_name": "order_id",
        "rows": 5,
        "nulls": 0,
        "profiled_at": now,
    }
    lake.ray_write(ray_local.data.from_items([row, {**row, "column_name": "item_id"}]), "ops.table_profiles")
    assert get_json(f"{served}/lake/tables") == (200, [{"table": "ops.table_profiles", "version": 0, "rows": 2}])
    assert get_json(f"{served}/no-such-endpoint")[0] == 404


def test_unknown_app_args_are_refused():
    from shoplake.serve.app import build_app

    with pytest.raises(ValidationError, match="lake_root"):
        build_app({"env": "local", "lake_root": "/x"})
