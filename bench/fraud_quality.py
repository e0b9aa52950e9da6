"""Benchmark: fraud model quality per planted fraud pattern, and ``POST /fraud/score`` latency.

On the ``synthetic-fraud`` shop (``lakes.py``: 5,000 customers, 180 days, 2 % fraud;
built through the platform's own steps when missing) the script runs the fraud run of
the nightly flow (:func:`shoplake.fraud.train.run_fraud`): the rules baseline
(amount and velocity thresholds), XGBoost and the tabular network on Ray Train, all
judged on the same test split of matured payments, and registers the champion in the
bench lake's own registry.

Quality: the synthetic shop plants three fraud patterns (stolen-card bursts, account
takeovers, card testing; ``_ground_truth.json`` names their payments). For each
pattern, the test split's payments of that pattern are the positives and its
legitimate payments the negatives; PR-AUC and recall at 1 % false-positive rate of
every model, and the champion's PR-AUC as a ratio to the rules baseline's.

Latency: the Serve application runs on 127.0.0.1 over the bench lake; for each
number of ``--clients`` threads (default 1, 2 and 4) they post ``--requests``
payments (the last day's payments with new ids, so each one also joins the online
state) after ``--warmup`` untimed ones. It prints p50, p99 and the rate of each
burst, and the in-process time of the same scoring without HTTP.

Run::

    .venv/bin/python bench/fraud_quality.py
    .venv/bin/python bench/fraud_quality.py --requests 5000 --clients 2,8
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import socket
import sys
import time

import numpy as np

from http_load import fire, posts
from lakes import DATASETS, ROOT, ensure_lake
from shoplake.entry import add_config_args, config_from_args, exit_cleanly

DATASET = "synthetic-fraud"
#: The p99 latency bar of /fraud/score on this machine, ms.
P99_BAR_MS = 50.0
PATH = "/fraud/score"


def pattern_payments(landing: str) -> dict[str, set[str]]:
    """Planted fraud payment ids per pattern, from the shop's ground truth."""
    from shoplake.datagen.synthetic import GROUND_TRUTH_FILE

    truth = json.loads((ROOT / landing / GROUND_TRUTH_FILE).read_text())
    out: dict[str, set[str]] = {}
    for incident in truth["fraud"]["incidents"]:
        out.setdefault(incident["pattern"], set()).update(incident["payment_ids"])
    return out


def quality_table(result, patterns: dict[str, set[str]]):
    """PR-AUC and recall at 1 % FPR per pattern and model, each PR-AUC also as a ratio to the rules baseline's."""
    from rich import box
    from rich.table import Table

    from shoplake.fraud import metrics as M

    test = result.test
    ids = np.asarray(test.payment_ids, dtype=object)
    table = Table(title=f"per planted pattern, test split ({len(ids):,} payments from {test.first_day})", box=box.SIMPLE)
    for header in ("pattern", "frauds", "model", "PR-AUC", "R@1%FPR", "PR-AUC / rules"):
        table.add_column(header, justify="left" if header in ("pattern", "model") else "right")
    ratios = {}
    for pattern, pids in sorted(patterns.items()):
        positive = np.isin(ids, list(pids)) & (test.y == 1)
        keep = positive | (test.y == 0)
        y = positive[keep].astype(np.int64)
        pr = {m: M.average_precision(y, ev.test_scores[keep]) for m, ev in result.evaluations.items()}
        rules = pr.get("rules", float("nan"))
        for n, (model, ev) in enumerate(result.evaluations.items()):
            ratio = pr[model] / rules if rules > 0 else float("nan")
            name = f"[bold]{model}[/bold]" if model == result.champion else model
            table.add_row(pattern if n == 0 else "", f"{int(y.sum()):,}" if n == 0 else "", name, f"{pr[model]:.3f}",
                          f"{M.recall_at_fpr(y, ev.test_scores[keep], 0.01):.3f}", f"{ratio:.2f}x")  # fmt: skip
        ratios[pattern] = (pr[result.champion], rules, pr[result.champion] / rules if rules > 0 else float("nan"), int(y.sum()))
    return table, ratios


def request_bodies(lake, run_date: dt.date, n: int) -> list[dict]:
    """``n`` payment bodies: the last day's payments in time order, repeated with new ids and later times as needed."""
    from shoplake import columns as C
    from shoplake.features.pit import run_midnight
    from shoplake.fraud.schemas import TRANSACTIONS
    from shoplake.fraud.serve import PaymentIn

    rows = lake.to_arrow(TRANSACTIONS, run_date=run_date).sort_by([(C.PAYMENT_TS, "ascending"), (C.PAYMENT_ID, "ascending")])
    day = [r for r in rows.to_pylist() if r[C.PAYMENT_TS] >= run_midnight(run_date - dt.timedelta(days=1))]
    if not day:
        raise SystemExit(f"no payments on {run_date - dt.timedelta(days=1)} to post")
    bodies = []
    for i in range(n):
        r = day[i % len(day)]
        body = {k: r[k] for k in PaymentIn.model_fields}
        body[C.PAYMENT_ID] = f"bench-{i}"
        body[C.PAYMENT_TS] = (r[C.PAYMENT_TS] + dt.timedelta(days=1 + i // len(day))).isoformat()
        bodies.append(body)
    return bodies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fraud_quality", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--requests", type=int, default=2_000, help="timed POST /fraud/score requests")
    parser.add_argument("--clients", default="1,2,4", help="concurrent HTTP client threads (the bounded load), one burst per value")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests first")
    parser.add_argument("--access-log", action="store_true", help="keep Serve's per-request access log (off: it costs CPU on 2 cores)")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    logging.getLogger("ray").setLevel(logging.WARNING)

    from rich.console import Console

    from shoplake.config import load_config
    from shoplake.fraud.bundle import FraudBundle
    from shoplake.fraud.report import fraud_metrics_table
    from shoplake.fraud.schemas import TXN_FEATURES
    from shoplake.fraud.score import score_rows
    from shoplake.fraud.serve import FraudScorer, PaymentIn
    from shoplake.fraud.train import metrics_rows, run_fraud
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray

    console = Console(file=sys.stdout)
    overrides, run_date = ensure_lake(DATASET, cfg, needs=(TXN_FEATURES,))
    overrides = [*args.overrides, *overrides, f"runs_dir={ROOT}/runs/bench"]
    dcfg = load_config(cfg.env, overrides)
    lake = Lake(dcfg)
    init_ray(dcfg)
    started = time.monotonic()
    result = run_fraud(dcfg, lake, run_date, name=f"bench_fraud_{int(time.time())}")
    console.print(f"\n[bold]{DATASET}[/bold]: run date {run_date}; fraud run {time.monotonic() - started:.0f} s")
    for split, (payments, frauds, first_day) in result.splits.items():
        console.print(f"  {split}: {payments:,} payments from {first_day}, {frauds:,} fraud")
    console.print(fraud_metrics_table(metrics_rows(result, None, dt.datetime.now(dt.timezone.utc))))
    for model, ev in result.evaluations.items():
        console.print(f"  {model}: {ev.seconds:.1f} s")
    table, ratios = quality_table(result, pattern_payments(DATASETS[DATASET]["landing"]))
    console.print(table)

    bodies = request_bodies(lake, run_date, args.warmup + args.requests)
    bundle = FraudBundle.load(result.bundle_path)
    scorer = FraudScorer(dcfg, lake)
    local = []
    for body in bodies[args.warmup :]:
        payment = PaymentIn.model_validate(body)
        t0 = time.perf_counter()
        scorer.score(payment)
        local.append(time.perf_counter() - t0)
    one = np.asarray([scorer.state.vector(PaymentIn.model_validate(bodies[0]).model_dump())])
    t0 = time.perf_counter()
    for _ in range(200):
        score_rows(bundle, one)
    model_ms = (time.perf_counter() - t0) / 200 * 1000

    from ray import serve

    from shoplake.serve.app import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging_config = {"enable_access_log": args.access_log, "log_level": "WARNING"}
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=logging_config)
    try:
        serve.run(build_app({"env": dcfg.env, "overrides": overrides}), name="shoplake", route_prefix="/", logging_config=logging_config)
        levels = [int(c) for c in str(args.clients).split(",")]
        fire(port, posts(PATH, bodies[: args.warmup]), max(levels))
        bursts = {}
        for n, clients in enumerate(levels):
            # Every burst posts new payment ids, so each payment joins the online state once.
            burst = posts(PATH, [{**b, "payment_id": f"{b['payment_id']}-{n}"} for b in bodies[args.warmup :]])
            bursts[clients] = fire(port, burst, clients)
    finally:
        serve.shutdown()
    local_p50, local_p99 = (float(np.quantile(local, q) * 1000) for q in (0.5, 0.99))

    from rich import box
    from rich.table import Table

    latency = Table(title=f"POST /fraud/score on Ray Serve (one replica), {args.requests:,} requests per burst", box=box.SIMPLE)
    for header in ("clients", "p50 ms", "p99 ms", "requests/s", f"p99 < {P99_BAR_MS:.0f} ms"):
        latency.add_column(header, justify="right")
    for clients, (latencies, wall) in bursts.items():
        p50, p99 = (float(np.quantile(latencies, q) * 1000) for q in (0.5, 0.99))
        latency.add_row(str(clients), f"{p50:.1f}", f"{p99:.1f}", f"{len(latencies) / wall:.0f}", "yes" if p99 < P99_BAR_MS else "no")
    console.print(latency)
    console.print(f"in-process FraudScorer.score (features + model + reasons, no HTTP): p50 {local_p50:.2f} ms, p99 {local_p99:.2f} ms; "
                  f"model and reasons alone {model_ms:.2f} ms")  # fmt: skip
    console.print(f"\nchampion {result.champion} PR-AUC / rules PR-AUC per planted pattern (test split):")
    for pattern, (champ, rules, ratio, n) in sorted(ratios.items()):
        console.print(f"  {pattern}: {champ:.3f} / {rules:.3f} = {ratio:.2f}x ({n} fraud payments)")
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
