"""The lake tests run on both engines: delta-spark (where the session has the Delta jars) and delta-rs."""

from __future__ import annotations

import pytest

ENGINES = ("delta-spark", "delta-rs")


@pytest.fixture(params=ENGINES)
def cfg(request, make_cfg, spark):
    from shoplake.spark import delta_classes_available

    if request.param == "delta-spark" and not delta_classes_available(spark):
        pytest.skip("this Spark session has no Delta jars (no access to Maven Central)")
    return make_cfg(f"lake.engine={request.param}")
