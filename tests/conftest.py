"""Shared fixtures: one Spark session and one local Ray instance for the whole run."""

from __future__ import annotations

import pytest

from shoplake.config import load_config

TEST_OVERRIDES = (
    "spark.master=local[2]",
    "spark.conf.spark.sql.shuffle.partitions=2",
    "spark.conf.spark.default.parallelism=2",
    "spark.conf.spark.driver.memory=2g",
    "ray.num_cpus=2",
)


@pytest.fixture(scope="session")
def spark():
    from shoplake.spark import get_spark

    session = get_spark(load_config("local", TEST_OVERRIDES))
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


@pytest.fixture
def cfg(make_cfg):
    return make_cfg("lake.engine=delta-rs")


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


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> tuple[int, object]:
    """GET ``url``: ``(status, JSON body)``, error statuses included."""
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def post_json(url: str, body: object, raw: bytes | None = None) -> tuple[int, object]:
    """POST ``body`` as JSON (or the bytes ``raw`` as they are) to ``url``: ``(status, JSON body)``, error statuses included."""
    import json
    import urllib.error
    import urllib.request

    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def serve_url(ray_local):
    """Ray Serve listening on a free port of 127.0.0.1 for one test module; yields its base URL."""
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
