"""Shared fixtures: one Spark session and one local Ray instance for the whole run."""

from __future__ import annotations

import pytest

from helpers import TEST_ENGINE_ENV, TEST_OVERRIDES, free_port
from shoplake.config import load_config


@pytest.fixture(scope="session")
def spark(request):
    import os

    from shoplake.spark import get_spark
    from shoplake.storage import HADOOP_AWS_PACKAGE

    # With the suite on delta-rs the session is built without the Delta jars, as on a machine without Maven access.
    engine = os.environ.get(TEST_ENGINE_ENV)
    overrides = [*TEST_OVERRIDES, *([f"lake.engine={engine}"] if engine else [])]
    session = None
    if any(item.get_closest_marker("object_storage") for item in request.session.items):
        # Jars join a session only when it starts: the run's one session needs Hadoop's S3 connector for the
        # object-storage tests. Where it cannot be fetched they skip (s3_spark) and the rest runs as usual.
        try:
            session = get_spark(load_config("local", [*overrides, f"spark.packages=[{HADOOP_AWS_PACKAGE}]"]))
        except Exception:  # noqa: BLE001 - any failure to start with the connector means "not available"
            session = None
    session = session or get_spark(load_config("local", overrides))
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


#: Credentials the local S3 server accepts (any do); the object-storage tests put them in the environment.
S3_TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "shoplake-test", "AWS_SECRET_ACCESS_KEY": "shoplake-test-secret", "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """An S3-compatible server (moto) on a free port of 127.0.0.1 for the whole run; yields its URL.

    It runs as a process of its own: delta-rs holds the GIL through some calls, so a server
    thread in the test process would wait for the very request it should answer.
    """
    import subprocess
    import sys
    import time
    import urllib.request

    pytest.importorskip("moto.server", reason="moto[server] (the test extra) runs the local S3 server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("s3_server") / "moto.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the S3 server did not start on {url}; its log: {log}") from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _s3_client(endpoint: str):
    import boto3

    creds = S3_TEST_CREDENTIALS
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=creds["AWS_REGION"],
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"], aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip


@pytest.fixture
def s3_root(s3_endpoint, monkeypatch):
    """A new bucket on the local S3 server, its endpoint and credentials in the environment; returns ``s3://<bucket>/lake``."""
    import uuid

    for key, value in {**S3_TEST_CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    _s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/lake"


@pytest.fixture
def s3_keys(s3_endpoint):
    """``keys(root)``: every object key under an ``s3://bucket/prefix`` root, relative to it, as the server lists them."""

    def keys(root: str) -> list[str]:
        bucket, prefix = root.removeprefix("s3://").split("/", 1)
        pages = _s3_client(s3_endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
        return [obj["Key"].removeprefix(prefix + "/") for page in pages for obj in page.get("Contents", [])]

    return keys


@pytest.fixture
def s3_spark(spark):
    """The run's Spark session, where it holds Hadoop's S3 connector; the test skips otherwise."""
    from shoplake.storage import jvm_class_available

    if not jvm_class_available(spark, "org.apache.hadoop.fs.s3a.S3AFileSystem"):
        pytest.skip("this Spark session has no hadoop-aws (no access to Maven Central)")
    return spark
