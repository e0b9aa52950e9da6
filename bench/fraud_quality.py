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

A shop's own labelled table (``--own-table``): with ``fraud.feature_table`` set, the
script runs the fraud run on that table alone instead (the same time split, champion
on validation, test scored once, intervals) and sets each model against a reference
fitted on the same splits outside the platform: scikit-learn's histogram GBDT, its
learning rate and leaves chosen on validation PR-AUC. ``--make-own-table PATH`` writes
a synthetic such table first (payments with a few noisy, interacting numeric signals
of the shop's own; ``--own-rows``, ``--own-fraud-rate``), so the comparison runs
without one.

Run::

    .venv/bin/python bench/fraud_quality.py
    .venv/bin/python bench/fraud_quality.py --requests 5000 --clients 2,8
    .venv/bin/python bench/fraud_quality.py --make-own-table data/own-fraud.parquet \
        --set 'fraud.feature_table={uri: data/own-fraud.parquet, format: parquet}'
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from http_load import fire, free_port, posts
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


#: The reference's grid, searched on validation PR-AUC.
REFERENCE_GRID = {"learning_rate": (0.05, 0.1, 0.2), "max_leaf_nodes": (15, 31, 63)}


def make_own_table(path: str, rows: int, fraud_rate: float, seed: int = 0) -> None:
    """A synthetic labelled payments table: ids, times over 120 days, customers, amounts and six numeric signals.

    Fraud depends on the signals through thresholds and an interaction, with noise, so
    neither model separates it perfectly; the last day is left unlabelled.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    seconds = np.sort(rng.integers(0, 120 * 86_400, rows))
    signals = rng.normal(size=(rows, 6))
    amount = np.round(np.exp(rng.normal(3.5, 1.0, rows)), 2)
    logit = (1.6 * signals[:, 0] + 1.2 * np.maximum(signals[:, 1], 0) * (signals[:, 2] > 0.5) + 0.8 * signals[:, 3] ** 2
             + 0.4 * np.log(amount) + rng.normal(0, 1.0, rows))  # fmt: skip
    label = (logit > np.quantile(logit, 1 - fraud_rate)).astype(np.int64)
    last_day = seconds >= 119 * 86_400
    table = pa.table({
        "payment_id": [f"own{i:07d}" for i in range(rows)],
        "payment_ts": pa.array([start + dt.timedelta(seconds=int(x)) for x in seconds], pa.timestamp("us", tz="UTC")),
        "label": pa.array(np.where(last_day, None, label).tolist(), pa.int64()),
        "user_id": [f"c{i}" for i in rng.integers(0, rows // 10 + 1, rows)],
        "amount": amount,
        **{f"signal_{k}": signals[:, k] for k in range(6)},
    })  # fmt: skip
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def reference_scores(result, cfg) -> tuple[dict, np.ndarray]:
    """A scikit-learn histogram GBDT on the run's own splits: the grid point best on validation PR-AUC, its test scores."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from shoplake.fraud import metrics as M
    from shoplake.fraud.dataset import time_split, training_data
    from shoplake.lake import Lake

    data = training_data(cfg, Lake(cfg), result.run_date)
    train, valid, test = time_split(data.rows, cfg.fraud.validation_share, cfg.fraud.test_share, data.feature_names, data.what)
    best, best_pr, best_model = None, -1.0, None
    for lr in REFERENCE_GRID["learning_rate"]:
        for leaves in REFERENCE_GRID["max_leaf_nodes"]:
            model = HistGradientBoostingClassifier(learning_rate=lr, max_leaf_nodes=leaves, max_iter=300, early_stopping=False,
                                                   class_weight="balanced", random_state=cfg.training.seed)  # fmt: skip
            model.fit(train.X, train.y)
            pr = M.average_precision(valid.y, model.predict_proba(valid.X)[:, 1])
            if pr > best_pr:
                best, best_pr, best_model = {"learning_rate": lr, "max_leaf_nodes": leaves}, pr, model
    return {**best, "validation_pr_auc": best_pr}, best_model.predict_proba(test.X)[:, 1]


def own_table_report(console, cfg, result) -> None:
    """Each model's test PR-AUC with its interval beside the reference's, and the champion against it."""
    from shoplake.evaluation import bootstrap_statistic
    from shoplake.fraud import metrics as M

    ev = cfg.evaluation
    test = result.test
    chosen, ref = reference_scores(result, cfg)
    console.print(f"reference: scikit-learn HistGradientBoostingClassifier {chosen}")
    scores = {**{m: e.test_scores for m, e in result.evaluations.items()}, "reference (sklearn hist GBDT)": ref}
    for name, s in scores.items():
        pr = bootstrap_statistic(M.average_precision, test.y, s, draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)
        console.print(f"  {name}: test PR-AUC {pr.value:.3f} ({pr.low:.3f}..{pr.high:.3f})")

    def difference(y, a, b) -> float:
        return M.average_precision(y, a) - M.average_precision(y, b)

    diff = bootstrap_statistic(
        difference, test.y, scores[result.champion], ref, draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed
    )
    console.print(f"champion {result.champion} minus the reference: {diff} ({diff.verdict()})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fraud_quality", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--requests", type=int, default=2_000, help="timed POST /fraud/score requests")
    parser.add_argument("--clients", default="1,2,4", help="concurrent HTTP client threads (the bounded load), one burst per value")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests first")
    parser.add_argument("--access-log", action="store_true", help="keep Serve's per-request access log (off: it costs CPU on 2 cores)")
    parser.add_argument("--make-own-table", metavar="PATH", help="write a synthetic labelled table of the shop's own features first")
    parser.add_argument("--own-rows", type=int, default=60_000, help="rows of --make-own-table")
    parser.add_argument("--own-fraud-rate", type=float, default=0.02, help="fraud share of --make-own-table")
    args = parser.parse_args(argv)
    if args.make_own_table:
        make_own_table(args.make_own_table, args.own_rows, args.own_fraud_rate)
    cfg = config_from_args(args)
    logging.getLogger("ray").setLevel(logging.WARNING)
    if cfg.fraud.feature_table is not None:
        return own_table_main(args, cfg)

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

    port = free_port()
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


def own_table_main(args, cfg) -> int:
    """The fraud run on the shop's own table (``fraud.feature_table``) and the reference beside it."""
    from rich.console import Console

    from shoplake.config import load_config
    from shoplake.fraud.report import fraud_metrics_table
    from shoplake.fraud.train import metrics_rows, run_fraud
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray

    console = Console(file=sys.stdout)
    # The run's metrics, registry and bundle go to a bench lake of their own.
    dcfg = load_config(cfg.env, [*args.overrides, f"lake.root={ROOT}/data/lake-own-fraud", f"runs_dir={ROOT}/runs/bench"])
    init_ray(dcfg)
    started = time.monotonic()
    result = run_fraud(dcfg, Lake(dcfg), name=f"bench_own_fraud_{int(time.time())}")
    console.print(
        f"\n[bold]{dcfg.fraud.feature_table.uri}[/bold]: run date {result.run_date}; fraud run {time.monotonic() - started:.0f} s"
    )
    for split, (payments, frauds, first_day) in result.splits.items():
        console.print(f"  {split}: {payments:,} payments from {first_day}, {frauds:,} fraud")
    console.print(fraud_metrics_table(metrics_rows(result, None, dt.datetime.now(dt.timezone.utc))))
    for model, ev in result.evaluations.items():
        console.print(f"  {model}: {ev.seconds:.1f} s")
    own_table_report(console, dcfg, result)
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
