"""Benchmark: latency and throughput of ``GET /recommend`` on Ray Serve vs the bundle in-process.

What it measures, on the same registered bundle and the same sequence of users:

* **serve**: ``GET /recommend?user_id=U&k=K`` against the shoplake Serve application
  (one deployment: ingress and model in each replica) on 127.0.0.1, fired by ``--clients``
  threads, each with its own keep-alive HTTP connection, ``--requests`` requests in
  all; every answer must be 200 with ``k`` items or the run fails;
* **in-process**: ``bundle.recommend([U], K)`` called in a loop in this process, one
  user at a time, the floor that serving adds its overhead to (baseline).

For each: p50 / p99 / mean latency in ms and requests per second over the whole
burst; the ratio is serve req/s divided by in-process req/s. ``--warmup`` untimed
requests of each kind run first. Before timing, the first 20 users' served items are
checked to be exactly the in-process answer.

The bundle is either the serving version registered in an existing lake
(``--lake-root``: the model ``shoplake score-recommendations`` would use) or a
synthetic matrix-factorization bundle of ``--users`` x ``--items`` (histories of
5-30 items), registered into a temporary lake that is deleted afterwards. A share
of the requests (``--unknown``) asks for users the model does not know
(the popularity fallback).

Run::

    make bench
    .venv/bin/python bench/recommend_latency.py --users 20000 --items 5000 --requests 2000 --clients 4
    .venv/bin/python bench/recommend_latency.py --lake-root lake --requests 1000

Ray starts locally from the configuration (``ray.num_cpus``; all cores if unset);
the Serve replicas take the CPUs the application asks for (0.25 each).
"""

from __future__ import annotations

import argparse
import http.client
import logging
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from http_load import fire as load
from http_load import free_port, send
from shoplake.entry import add_config_args, config_from_args, exit_cleanly

log = logging.getLogger("bench.recommend_latency")

CHECKED_USERS = 20


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recommend_latency", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--lake-root", help="serve the registered serving model of this lake (default: a synthetic bundle)")
    parser.add_argument("--users", type=int, default=10_000, help="users of the synthetic bundle")
    parser.add_argument("--items", type=int, default=2_000, help="items of the synthetic bundle")
    parser.add_argument("--dim", type=int, default=32, help="embedding size of the synthetic bundle")
    parser.add_argument("--requests", type=int, default=1_000, help="timed requests of each kind")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP client threads")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests of each kind first")
    parser.add_argument("--k", type=int, default=None, help="items per request (default: recommender.k)")
    parser.add_argument("--unknown", type=float, default=0.1, help="share of requests for users the model does not know")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--access-log", action="store_true", help="keep Serve's per-request access log (off: it costs CPU on 2 cores)")
    return parser


def synthetic_bundle(users: int, items: int, dim: int, seed: int):
    """A matrix-factorization bundle with random embeddings and histories."""
    from shoplake.recommend.bundle import RecommenderBundle
    from shoplake.recommend.models.mf import IdMap
    from shoplake.recommend.models.scorers import MFScorer

    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 31, size=users)
    histories = [rng.choice(items, size=min(n, items), replace=False) for n in lengths]
    scale = 1 / np.sqrt(dim)
    scorer = MFScorer(rng.normal(0, scale, (users, dim)), rng.normal(0, scale, (items, dim)), rng.normal(0, 0.1, items))
    return RecommenderBundle.from_histories(
        scorer, IdMap([f"U{i:07d}" for i in range(users)]), IdMap([f"I{j:06d}" for j in range(items)]), histories,
        [rng.random(len(h)) < 0.3 for h in histories], popularity=rng.pareto(1.5, items),
        titles=[f"item {j}" for j in range(items)], categories=[f"cat{j % 20}" for j in range(items)],
        metadata={"run_date": "2024-03-01", "synthetic": True},
    )  # fmt: skip


@dataclass
class Timing:
    """Latencies (seconds) of one burst and its wall time."""

    latencies: list[float]
    wall: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall

    def quantile_ms(self, q: float) -> float:
        return float(np.quantile(self.latencies, q) * 1000)


def fire(port: int, users: list[str], k: int, clients: int) -> Timing:
    """GET /recommend for every user, spread over ``clients`` threads with keep-alive connections."""
    requests = [("GET", f"/recommend?user_id={quote(user)}&k={k}", None) for user in users]
    return Timing(*load(port, requests, clients, check=lambda answer: len(answer.get("items", [])) == k))


def in_process(bundle, users: list[str], k: int, exclude_seen: bool) -> Timing:
    """``bundle.recommend`` for one user at a time, in this thread."""
    latencies = []
    start = time.perf_counter()
    for user in users:
        t0 = time.perf_counter()
        recs = bundle.recommend([user], k, exclude_seen=exclude_seen)[0]
        latencies.append(time.perf_counter() - t0)
        if len(recs) != k:
            raise RuntimeError(f"user {user}: {len(recs)} recommendations, expected {k}")
    return Timing(latencies, time.perf_counter() - start)


def results_table(serve_t: Timing, local_t: Timing, title: str):
    from rich.table import Table

    table = Table(title=title)
    for name in ("path", "requests", "p50 ms", "p99 ms", "mean ms", "req/s"):
        table.add_column(name, justify="left" if name == "path" else "right")
    for name, t in (("serve GET /recommend", serve_t), ("in-process bundle.recommend", local_t)):
        table.add_row(
            name, f"{len(t.latencies):,}", f"{t.quantile_ms(0.5):.2f}", f"{t.quantile_ms(0.99):.2f}",
            f"{statistics.fmean(t.latencies) * 1000:.2f}", f"{t.rate:,.0f}",
        )  # fmt: skip
    return table


def main(argv: list[str] | None = None) -> int:

    from rich.console import Console

    from shoplake.ray_runtime import init_ray
    from shoplake.recommend.bundle import load_serving_bundle
    from shoplake.registry import log_model

    args = build_parser().parse_args(argv)
    for name in ("requests", "clients", "users", "items", "dim"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be at least 1")
    if not 0 <= args.unknown < 1:
        raise SystemExit("--unknown must be in [0, 1)")
    own_root = args.lake_root is None
    root = Path(tempfile.mkdtemp(prefix="shoplake-bench-serve-")) if own_root else Path(args.lake_root).resolve()
    args.overrides = [*args.overrides, f"lake.root={root}"]
    if args.k is not None:
        args.overrides.append(f"recommender.k={args.k}")
    cfg = config_from_args(args)
    k = cfg.recommender.k
    console = Console(file=sys.stdout)
    serve = None
    try:
        if own_root:
            log.info("synthetic bundle: %d users x %d items, dim %d", args.users, args.items, args.dim)
            folder = synthetic_bundle(args.users, args.items, args.dim, args.seed).save(root / "_bundle")
            log_model(cfg, folder, model_name="mf", params={"synthetic": True, "dim": args.dim}, metrics={}, table_versions={},
                      run_date="2024-03-01", run_name="bench")  # fmt: skip
        bundle, info = load_serving_bundle(cfg)
        if k > len(bundle.item_ids):
            raise SystemExit(f"k={k} is more than the {len(bundle.item_ids)} items of the catalogue")
        rng = np.random.default_rng(args.seed)
        known = rng.choice(len(bundle.user_ids), size=args.requests + args.warmup)
        users = [bundle.user_ids.ids[i] for i in known]
        users = [f"new-{i}" if rng.random() < args.unknown else u for i, u in enumerate(users)]
        # Users with too short a catalogue left after their history would answer fewer than k.
        users = [u for u in users if len(bundle.item_ids) - len(bundle.history(int(bundle.user_index([u])[0]))) >= k]
        warm, timed = users[: args.warmup], users[args.warmup :]

        ray = init_ray(cfg)
        from ray import serve

        from shoplake.serve.app import build_app

        port = free_port()
        started = time.perf_counter()
        logging_config = {"enable_access_log": args.access_log, "log_level": "WARNING"}
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=logging_config)
        serve.run(
            build_app({"env": cfg.env, "overrides": args.overrides}), name="shoplake", route_prefix="/", logging_config=logging_config
        )
        log.info("Serve app up on port %d in %.1f s (model %s version %s)", port, time.perf_counter() - started, info.kind, info.version)

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for user in users[:CHECKED_USERS]:
            status, body = send(conn, "GET", f"/recommend?user_id={quote(user)}&k={k}")
            expected = [r.item_id for r in bundle.recommend([user], k, exclude_seen=cfg.recommender.exclude_seen)[0]]
            if status != 200 or [r["item_id"] for r in body["items"]] != expected:
                raise RuntimeError(f"served answer for {user} differs from the in-process one: {status} {str(body)[:300]}")
        conn.close()

        fire(port, warm, k, args.clients)
        in_process(bundle, warm, k, cfg.recommender.exclude_seen)
        serve_t = fire(port, timed, k, args.clients)
        local_t = in_process(bundle, timed, k, cfg.recommender.exclude_seen)
    finally:
        if serve is not None:
            serve.shutdown()
        if own_root:
            shutil.rmtree(root, ignore_errors=True)

    cpus = ray.cluster_resources().get("CPU")
    console.print(
        f"{info.kind} bundle v{info.version}: {len(bundle.user_ids):,} users x {len(bundle.item_ids):,} items, k={k}, "
        f"{args.unknown:.0%} unknown users; Ray {ray.__version__} with {cpus:g} CPUs, {args.clients} client threads",
        soft_wrap=True,
    )
    console.print(results_table(serve_t, local_t, "recommend latency: Ray Serve HTTP vs in-process"))
    console.print(
        f"ratio serve / in-process: {serve_t.rate / local_t.rate:.2f}x requests/s, "
        f"{serve_t.quantile_ms(0.5) / local_t.quantile_ms(0.5):.1f}x p50 latency",
        soft_wrap=True,
    )
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
