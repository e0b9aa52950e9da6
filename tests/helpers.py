"""What tests import besides fixtures: the test configuration, a free port, and JSON over HTTP."""

from __future__ import annotations

#: Settings every test configuration starts from: small local Spark and Ray.
TEST_OVERRIDES = (
    "spark.master=local[2]",
    "spark.conf.spark.sql.shuffle.partitions=2",
    "spark.conf.spark.default.parallelism=2",
    "spark.conf.spark.driver.memory=2g",
    "ray.num_cpus=2",
)


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
