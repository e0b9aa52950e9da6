"""Benchmark: latency of ``POST /ads/rank`` on Ray Serve at 1, 2 and 4 concurrent clients, and the same ranking in-process.

The ads state is either an existing lake's (``--lake-root``: its latest gold.ad_state,
gold.ad_viewers and gold.ad_items and its registered serving ads model) or a synthetic
one written to a temporary lake and deleted afterwards: ``--viewers`` viewers with
random ad and clickstream histories over 12 categories, ``--ads`` ads (items of
``--ads // 3`` campaigns) in each of ``--placements`` placements, and a model fitted on
random labels over it (``--model``: ``gbt`` with the default ``ads.gbt_rounds`` and
depth, or ``deep_ctr``, the DCN-V2 network at its default sizes with 384-wide text
embeddings, untrained), calibrated and registered in the temporary lake, with a
serving.ad_plan of random budget multipliers (half the campaigns binding), so that
requests rank by the plan's value as in production. Training does not matter here:
the request does the same work whatever the weights.

Each request ranks every ad of a random placement for a random viewer (``--unknown``
of them unknown to the state) and returns the top ``ads.rank_k`` (10) with their
reasons. After ``--warmup`` untimed requests, each number of ``--clients`` threads
(keep-alive connections) posts ``--requests`` requests; every answer must be 200 with
``k`` ads. It prints p50, p99 and the rate of each burst beside the p99 bar (50 ms),
and the in-process time of :meth:`shoplake.ads.serve.AdRanker.rank` on the same bodies.
Beside each burst, the floor of the same route: the same bodies with an unknown
placement, refused with 422 before any scoring (the ingress, the hop to the replica,
FastAPI and the body's validation). Every burst runs once per ``--ingress``
(``serve.ingress``: by default ``haproxy``, shoplake's setting, then ``proxy``, Serve's
Python proxy actor), each on its own local Ray instance, and the ratio of their p99s is
printed.

Run::

    .venv/bin/python bench/ads_latency.py
    .venv/bin/python bench/ads_latency.py --model deep_ctr --clients 1,2,4 --requests 1000
    .venv/bin/python bench/ads_latency.py --lake-root data/lake-synthetic-bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from http_load import fire, free_port, posts
from shoplake.config import load_config
from shoplake.entry import add_config_args, config_from_args, exit_cleanly

PATH = "/ads/rank"
#: The p99 latency bar of /ads/rank on this machine, ms.
P99_BAR_MS = 50.0
RUN_DATE = dt.date(2024, 3, 31)
CATEGORIES = [f"cat{k:02d}" for k in range(12)]
#: Width of the synthetic ads' text embeddings (the text encoder's).
TEXT_DIM = 384


def synthetic_state(viewers: int, ads: int, placements: int, seed: int):
    """Random gold.ad_state, gold.ad_viewers and gold.ad_items rows of ``RUN_DATE``, shaped like a shop's."""
    import pyarrow as pa

    from shoplake import columns as C
    from shoplake.ads import schemas as S

    rng = np.random.default_rng(seed)
    items = [f"I{j:05d}" for j in range(ads)]
    campaign = {i: f"C{j % max(ads // 3, 1):04d}" for j, i in enumerate(items)}
    category = {i: CATEGORIES[j % len(CATEGORIES)] for j, i in enumerate(items)}
    price = {i: float(np.round(rng.lognormal(3.0, 0.8), 2)) for i in items}
    cpc = {c: float(rng.uniform(0.1, 1.5)) for c in set(campaign.values())}
    rows = []
    for p in range(placements):
        for i in items:
            rows.append({
                C.PLACEMENT: f"placement_{p}", C.ITEM_ID: i, C.CAMPAIGN_ID: campaign[i], C.CATEGORY: category[i],
                C.PRICE_BAND: int(np.searchsorted([10.0, 25.0, 50.0, 100.0], price[i])),
                S.ITEM_IMPRESSIONS: float(rng.integers(0, 5000)), S.ITEM_CTR: rng.uniform(0.01, 0.1), S.ITEM_CVR: rng.uniform(0.05, 0.3),
                S.CAMPAIGN_CTR: rng.uniform(0.01, 0.1), S.CAMPAIGN_CVR: rng.uniform(0.05, 0.3), S.PLACEMENT_CTR: rng.uniform(0.01, 0.1),
                S.PLACEMENT_CVR: rng.uniform(0.05, 0.3), S.PLACEMENT_ITEM_CTR: rng.uniform(0.01, 0.1),
                S.ITEM_VIEWS: float(rng.integers(0, 3000)), C.PRICE: price[i], S.CPC: cpc[campaign[i]], C.RUN_DATE: RUN_DATE,
            })  # fmt: skip
    people = [{C.USER_ID: None, S.USER_AD_IMPRESSIONS: 0.0, S.USER_CTR: 0.03, S.USER_EVENTS: 0.0, S.CATEGORIES: [],
               S.CATEGORY_EVENTS: [], C.RUN_DATE: RUN_DATE}]  # fmt: skip
    for u in range(viewers):
        seen = sorted(rng.choice(CATEGORIES, size=int(rng.integers(0, 6)), replace=False).tolist())
        counts = [float(rng.integers(1, 30)) for _ in seen]
        imps = float(rng.integers(0, 200))
        people.append({C.USER_ID: f"U{u:06d}", S.USER_AD_IMPRESSIONS: imps, S.USER_CTR: (rng.integers(0, 8) + 3.0) / (imps + 100.0),
                       S.USER_EVENTS: sum(counts) + float(rng.integers(0, 5)), S.CATEGORIES: seen, S.CATEGORY_EVENTS: counts,
                       C.RUN_DATE: RUN_DATE})  # fmt: skip
    ad_items = [{C.ITEM_ID: i, C.CATEGORY: category[i], C.PRICE: price[i], C.PRICE_BAND: 1, S.AD_TEXT: f"Item {i}", C.RUN_DATE: RUN_DATE}
                for i in items]  # fmt: skip
    return [
        pa.Table.from_pylist(r, schema=s.arrow_schema()) for r, s in ((rows, S.AD_STATE), (people, S.AD_VIEWERS), (ad_items, S.AD_ITEMS))
    ]


def synthetic_plan(state_rows, seed: int):
    """A serving.ad_plan of ``RUN_DATE`` over the campaigns and placements of the state: a random budget
    multiplier per campaign (half of them 0, not binding), so that requests rank by the plan's value."""
    import pyarrow as pa

    from shoplake import columns as C
    from shoplake.ads import schemas as S

    rng = np.random.default_rng(seed + 1)
    pairs = sorted(set(zip(state_rows[C.CAMPAIGN_ID].to_pylist(), state_rows[C.PLACEMENT].to_pylist(), strict=True)))
    multiplier = {c: float(rng.uniform(0.0, 2.0)) * float(rng.integers(0, 2)) for c in sorted({c for c, _ in pairs})}
    planned_at = dt.datetime.combine(RUN_DATE, dt.time(), dt.timezone.utc)
    rows = [
        {C.CAMPAIGN_ID: c, C.PLACEMENT: p, S.PLAN_IMPRESSIONS: 100.0, S.PLAN_CLICKS: 3.0, S.PLAN_CONVERSIONS: 0.3, S.PLAN_SPEND: 1.5,
         S.PLAN_VALUE: 9.0, S.PLAN_ROAS: 6.0, S.DAILY_BUDGET: 20.0, S.BUDGET_MULTIPLIER: multiplier[c], S.EXPLORATION: 0.05, S.MAX_RATIO: None,
         C.MODEL_NAME: "synthetic", C.MODEL_VERSION: None, S.PLANNED_AT: planned_at, C.RUN_DATE: RUN_DATE}
        for c, p in pairs
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=S.AD_PLAN.arrow_schema())


def register_synthetic_model(cfg, state, item_text: dict, kind: str, folder: Path, seed: int) -> None:
    """Fit ``kind`` on random labels over 200 viewers' impressions in every placement, calibrate, register."""
    import torch

    from shoplake.ads import metrics as M
    from shoplake.ads.bundle import AdsBundle
    from shoplake.ads.data import NUMERIC, AdData, Encoding
    from shoplake.ads.models import DeepCTRModel, DeepCTRNet, DeepSettings, GBTModel
    from shoplake.registry import log_model

    rng = np.random.default_rng(seed)
    viewers = rng.choice(len(state.viewer_ids), size=min(len(state.viewer_ids), 200), replace=False)
    parts = [state.data(int(v), p) for v in viewers for p in state.placements]
    n = sum(len(p) for p in parts)
    click = (rng.random(n) < 0.05).astype(np.float64)
    data = AdData({k: np.concatenate([p.cats[k] for p in parts]) for k in parts[0].cats}, np.vstack([p.num for p in parts]),
                  np.vstack([p.text for p in parts]), click, click * (rng.random(n) < 0.2), np.concatenate([p.placement for p in parts]),
                  np.concatenate([p.day for p in parts]), np.concatenate([p.ids for p in parts]))  # fmt: skip
    encoding = Encoding.fit(data)
    ads = cfg.ads
    if kind == "gbt":
        model = GBTModel.fit(data, encoding, ads.gbt_rounds, ads.gbt_max_depth, ads.gbt_eta, seed)
    else:
        torch.manual_seed(seed)
        settings = DeepSettings(tuple(encoding.sizes()), len(NUMERIC), data.text.shape[1], ads.embedding_dim, ads.text_dim,
                                ads.cross_layers, ads.hidden)  # fmt: skip
        model = DeepCTRModel(encoding, settings, DeepCTRNet(settings))
    ctr, cvr = model.predict(data)
    bundle = AdsBundle(model, M.fit_calibrator(data.click, ctr, "isotonic"), M.fit_calibrator(data.converted, ctr * cvr, "isotonic"),
                       item_text, {"model_name": kind, "run_date": RUN_DATE.isoformat(), "synthetic": True})  # fmt: skip
    bundle.save(folder)
    log_model(cfg, folder, model_name=kind, params={"synthetic": True}, metrics={}, table_versions={}, run_date=RUN_DATE,
              run_name="bench-ads", registered_model=ads.registered_model)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(prog="ads_latency", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--lake-root", help="serve this lake's latest ad state and registered model (default: a synthetic one)")
    parser.add_argument("--viewers", type=int, default=5_000, help="viewers of the synthetic state")
    parser.add_argument("--ads", type=int, default=150, help="ads of the synthetic state, each in every placement")
    parser.add_argument("--placements", type=int, default=4, help="placements of the synthetic state")
    parser.add_argument("--model", choices=("gbt", "deep_ctr"), default="gbt", help="model of the synthetic state")
    parser.add_argument("--requests", type=int, default=1_000, help="timed requests per burst")
    parser.add_argument("--clients", default="1,2,4", help="concurrent HTTP client threads, one burst per value")
    parser.add_argument("--ingress", default="haproxy,proxy", help="serve.ingress values measured one after the other, the first ours")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests first")
    parser.add_argument("--unknown", type=float, default=0.1, help="share of requests for viewers the state does not know")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--access-log", action="store_true", help="keep Serve's per-request access log (off: it costs CPU on 2 cores)")
    args = parser.parse_args(argv)
    ingresses = str(args.ingress).split(",")
    logging.getLogger("ray").setLevel(logging.WARNING)
    own_root = args.lake_root is None
    root = Path(tempfile.mkdtemp(prefix="shoplake-bench-ads-")) if own_root else Path(args.lake_root).resolve()
    # Nothing drains here: Serve's shutdown need not wait the production drain.
    args.overrides = [*args.overrides, f"lake.root={root}", "serve.drain_s=1", *(["lake.engine=delta-rs"] if own_root else [])]
    cfg = config_from_args(args)
    console = Console(file=sys.stdout)

    from ray import serve

    from shoplake import columns as C
    from shoplake.ads import schemas as S
    from shoplake.ads.scoring import AdState
    from shoplake.ads.serve import AdRanker, RankIn
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.serve.app import build_app

    ray = init_ray(cfg)
    lake = Lake(cfg)
    bursts: dict[str, dict] = {}
    floors: dict[str, dict] = {}
    try:
        if own_root:
            tables = synthetic_state(args.viewers, args.ads, args.placements, args.seed)
            for table, spec in zip(tables, (S.AD_STATE, S.AD_VIEWERS, S.AD_ITEMS)):
                lake.ray_write(ray.data.from_arrow(table), spec, mode="replace", run_dates=[RUN_DATE])
            lake.ray_write(ray.data.from_arrow(synthetic_plan(tables[0], args.seed)), S.AD_PLAN, mode="replace", run_dates=[RUN_DATE])
            rng = np.random.default_rng(args.seed)
            text = {i: rng.normal(size=TEXT_DIM).astype(np.float32) for i in tables[2][C.ITEM_ID].to_pylist()}
            state = AdState(tables[0], tables[1], text, RUN_DATE)
            register_synthetic_model(cfg, state, text, args.model, root / "_bundle", args.seed)
        ranker = AdRanker(cfg, lake)
        if ranker.served is None:
            raise SystemExit(f"nothing to serve: {ranker.problem}")
        state, kind = ranker.served.state, ranker.served.bundle.model.kind
        rng = np.random.default_rng(args.seed)
        placements = sorted(state.placements)
        known = [u for u in state.viewer_ids if u is not None]
        bodies = [
            {"user_id": None if rng.random() < args.unknown or not known else known[int(rng.integers(len(known)))],
             "placement": placements[int(rng.integers(len(placements)))]}
            for _ in range(args.warmup + args.requests)
        ]  # fmt: skip
        k = min(cfg.ads.rank_k, min(len(p) for p in state.placements.values()))
        local = []
        for body in bodies:
            request = RankIn.model_validate(body)
            t0 = time.perf_counter()
            ranker.rank(request)
            local.append(time.perf_counter() - t0)
        local = local[args.warmup :]

        levels = [int(c) for c in str(args.clients).split(",")]
        check = lambda answer: len(answer.get("ads", [])) == k  # noqa: E731
        refused = posts(PATH, [{**b, "placement": "no-such-placement"} for b in bodies[args.warmup :]])
        running = cfg.serve.ingress
        for ingress in ingresses:
            overrides = [*args.overrides, f"serve.ingress={ingress}"]
            if ingress != running:
                # Serve reads its ingress when Ray's processes start: a fresh local instance for another one.
                ray.shutdown()
                ray = init_ray(load_config(args.env, overrides))
                running = ingress
            port = free_port()
            logging_config = {"enable_access_log": args.access_log, "log_level": "WARNING"}
            serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=logging_config)
            try:
                serve.run(build_app({"env": cfg.env, "overrides": overrides}), name="shoplake", route_prefix="/",
                          logging_config=logging_config)  # fmt: skip
                fire(port, posts(PATH, bodies[: args.warmup]), max(levels), check)
                bursts[ingress] = {clients: fire(port, posts(PATH, bodies[args.warmup :]), clients, check) for clients in levels}
                # The floor: the same route answering 422 for an unknown placement, before any scoring.
                floors[ingress] = {clients: fire(port, refused, clients, status=422) for clients in levels}
            finally:
                serve.shutdown()
    finally:
        if own_root:
            shutil.rmtree(root, ignore_errors=True)

    per_placement = sorted({len(p) for p in state.placements.values()})
    console.print(
        f"{kind} model over {len(state.viewer_ids) - 1:,} viewers, {len(state.ads):,} ads x {len(placements)} placements "
        f"({', '.join(map(str, per_placement))} ads ranked a request), k={k}, {args.unknown:.0%} unknown viewers, "
        f"{'ranked by expected value (no plan)' if state.plan is None else f'ranked as the plan of {state.plan.run_date} weighs them'}; "
        f"Ray {ray.__version__} with {ray.cluster_resources().get('CPU', 0):g} CPUs",
        soft_wrap=True,
    )
    table = Table(title=f"POST {PATH} on Ray Serve (one replica), {args.requests:,} requests per burst", box=box.SIMPLE)
    for header in (
        "ingress",
        "clients",
        "p50 ms",
        "p99 ms",
        "requests/s",
        f"p99 < {P99_BAR_MS:.0f} ms",
        "422 floor p50 ms",
        "floor p99 ms",
    ):
        table.add_column(header, justify="right")
    p99s: dict[tuple[str, int], float] = {}
    for ingress, runs in bursts.items():
        for clients, (latencies, wall) in runs.items():
            p50, p99 = (float(np.quantile(latencies, q) * 1000) for q in (0.5, 0.99))
            f50, f99 = (float(np.quantile(floors[ingress][clients][0], q) * 1000) for q in (0.5, 0.99))
            p99s[ingress, clients] = p99
            table.add_row(ingress, str(clients), f"{p50:.1f}", f"{p99:.1f}", f"{len(latencies) / wall:.0f}",
                          "yes" if p99 < P99_BAR_MS else "no", f"{f50:.1f}", f"{f99:.1f}")  # fmt: skip
    console.print(table)
    if len(ingresses) == 2:
        first, second = ingresses
        ratios = ", ".join(f"{p99s[second, c] / p99s[first, c]:.2f}x at {c}" for c in levels)
        console.print(f"p99 of {second} over {first}: {ratios}")
    p50, p99 = (float(np.quantile(local, q) * 1000) for q in (0.5, 0.99))
    console.print(f"in-process AdRanker.rank (state, model, expected value, reasons; no HTTP): p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
