"""What tests import besides fixtures: the test configuration, a free port, and JSON over HTTP."""

from __future__ import annotations

from shoplake.spark import SMALL_DATA_CONF

#: Settings every test configuration starts from: small local Spark and Ray.
TEST_OVERRIDES = (
    "spark.master=local[2]",
    "spark.conf.spark.sql.shuffle.partitions=2",
    "spark.conf.spark.default.parallelism=2",
    "spark.conf.spark.driver.memory=2g",
    # The suite's tables hold kilobytes (docs/index.md, Tests).
    *(f"spark.conf.{key}={value}" for key, value in SMALL_DATA_CONF.items()),
    "ray.num_cpus=2",
    # Serve's shutdown waits for the replicas' drain: a second, not a load balancer's 30.
    "serve.drain_s=1",
    # Validation searches run in the tests with the smallest budget that still compares settings.
    "tuning.num_samples=2",
)
#: Names the lake engine the suite runs on (delta-spark or delta-rs); unset: delta-spark where the jars can be had.
TEST_ENGINE_ENV = "SHOPLAKE_TEST_ENGINE"


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


#: Users, items and popularity of the small recommender bundles below.
REC_USERS = ["u1", "u2", "u3"]
REC_ITEMS = ["a", "b", "c", "d", "e"]
POPULARITY = (5.0, 4.0, 3.0, 2.0, 1.0)


def make_bundle(scorer):
    """A recommender bundle over three users and five items, scored by ``scorer``."""
    import numpy as np

    from shoplake.recommend.bundle import RecommenderBundle
    from shoplake.recommend.models.mf import IdMap

    histories = [np.array([0, 1]), np.array([2]), np.array([], dtype=np.int64)]
    bought = [np.array([True, False]), np.array([True]), np.array([], dtype=bool)]
    return RecommenderBundle.from_histories(
        scorer, IdMap(REC_USERS), IdMap(REC_ITEMS), histories, bought, popularity=np.array(POPULARITY),
        titles=["A", "B", "C", "D", "E"], categories=["x", "x", "y", "y", None], metadata={"run_date": "2024-03-01"},
    )  # fmt: skip


def mf_bundle(seed: int):
    """A matrix-factorization recommender bundle with random factors drawn from ``seed``."""
    import numpy as np

    from shoplake.recommend.models.scorers import MFScorer

    rng = np.random.default_rng(seed)
    return make_bundle(MFScorer(rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), rng.normal(size=5)))


def answers(bundle) -> list[list[tuple[str, float, str]]]:
    """Top-3 items of every user of :func:`make_bundle` and of a stranger, rounded."""
    return [[(r.item_id, round(r.score, 5), r.reason) for r in recs] for recs in bundle.recommend([*REC_USERS, "stranger"], 3)]
