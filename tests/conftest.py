"""Shared fixtures: one Spark session and one local Ray instance for the whole run."""

from __future__ import annotations

import pytest

from helpers import TEST_ENGINE_ENV, TEST_OVERRIDES, free_port
from shoplake.config import load_config


@pytest.fixture(scope="session")
def spark():
    import os

    from shoplake.spark import get_spark

    # With the suite on delta-rs the session is built without the Delta jars, as on a machine without Maven access.
    engine = os.environ.get(TEST_ENGINE_ENV)
    session = get_spark(load_config("local", [*TEST_OVERRIDES, *([f"lake.engine={engine}"] if engine else [])]))
    yield session
    session.stop()


@pytest.fixture
def make_cfg(tmp_path):
    """Build a config whose lake and landing live under this test's tmp_path."""

    def make(*overrides: str):
        return load_config(
            "local",
            [*TEST_OVERRIDES, f"lake.root={tmp_path}/lake", f"landing.root={tmp_path}/landing", f"runs_dir={tmp_path}/runs", *overrides],
        )

    return make


@pytest.fixture(scope="session")
def test_engine(spark) -> str:
    """The lake engine of the suite: ``$SHOPLAKE_TEST_ENGINE``, else delta-spark where the session has the Delta jars."""
    import os

    from shoplake.spark import delta_classes_available

    chosen = os.environ.get(TEST_ENGINE_ENV)
    if chosen:
        if chosen == "delta-spark" and not delta_classes_available(spark):
            raise RuntimeError(f"{TEST_ENGINE_ENV}=delta-spark but the test session has no Delta jars")
        return chosen
    return "delta-spark" if delta_classes_available(spark) else "delta-rs"


@pytest.fixture
def cfg(make_cfg, test_engine):
    return make_cfg(f"lake.engine={test_engine}")


@pytest.fixture
def lake(cfg, spark):
    from shoplake.lake import Lake

    return Lake(cfg, spark)


@pytest.fixture(scope="session")
def ray_local():
    import ray

    from shoplake.ray_runtime import init_ray

    init_ray(load_config("local", TEST_OVERRIDES))
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def serve_url(ray_local):
    """Ray Serve listening on a free port of 127.0.0.1 for one test module; yields its base URL."""
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


@pytest.fixture(scope="session")
def empty_registry(tmp_path_factory):
    """An MLflow database with its tables made once (that takes seconds), copied by each test."""
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("registry") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def reg_cfg(make_cfg, tmp_path, empty_registry):
    """A config whose lake already holds an empty registry."""
    import shutil

    (tmp_path / "lake" / "_mlflow").mkdir(parents=True)
    shutil.copy(empty_registry, tmp_path / "lake" / "_mlflow" / "mlflow.db")
    return make_cfg()
