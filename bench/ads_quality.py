"""Benchmark: every ad model side by side on the synthetic shop, and each one's error against the planted probabilities.

The script generates a synthetic shop (``--users``, ``--days``, ``--ads-per-session``;
kept under ``data/ads-bench`` and reused when its parameters match), ingests its ad
events, products and clickstream, builds ``gold.ad_features`` for the morning after its
last day through the platform's feature step and runs the ads run of the nightly flow
(:func:`shoplake.ads.train.run_ads`): the smoothed historic click-through, logistic
regression on hashed crosses, XGBoost and the DCN-V2 network fused with the text
encoder, trained ESMM-style on Ray Train, all calibrated on the same validation split
and judged on the same test split.

It prints the run's metrics table (ROC-AUC, log-loss, normalized entropy, expected
calibration error of clicks and conversions) and, per model on the test split, the
mean absolute error and the calibration error of its calibrated pCTR and pCTCVR against
the true probabilities the generator planted, beside the same figures of the truth
itself (the ceiling any model can reach on these labels).

Run::

    .venv/bin/python bench/ads_quality.py
    .venv/bin/python bench/ads_quality.py --users 600 --days 60 --set ads.epochs=12
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np

from shoplake.entry import add_config_args, config_from_args, exit_cleanly

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--items", type=int, default=150)
    parser.add_argument("--days", type=int, default=50)
    parser.add_argument("--sessions", type=float, default=0.6, help="browsing sessions per user and day")
    parser.add_argument("--ads-per-session", type=float, default=6.0)
    parser.add_argument("--out", default="data/ads-bench", help="landing and lake folder (relative to the checkout)")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from shoplake import columns as C
    from shoplake.ads import metrics as M
    from shoplake.ads.bundle import AdsBundle
    from shoplake.ads.data import from_rows
    from shoplake.ads.pipeline import FEATURES
    from shoplake.ads.report import ads_metrics_table
    from shoplake.ads.train import load_matured, metrics_rows, run_ads
    from shoplake.config import load_config
    from shoplake.datagen.shop.common import GROUND_TRUTH_FILE, ShopParams
    from shoplake.datagen.synthetic import generate_shop
    from shoplake.evaluation import TEST
    from shoplake.features.run import build_features
    from shoplake.ingest.landing import AD_EVENTS, EVENTS, PRODUCTS
    from shoplake.ingest.run import ingest
    from shoplake.lake import Lake
    from shoplake.spark import get_spark

    console = Console(width=200)
    base = config_from_args(args)
    out = ROOT / args.out
    params = ShopParams(days=args.days, users=args.users, items=args.items, seed=base.generate.seed,
                        sessions_per_user_day=args.sessions, ad_impressions_per_session=args.ads_per_session)  # fmt: skip
    sets = [f"landing.root={out}/landing", f"lake.root={out}/lake", f"runs_dir={out}/runs", f"ads.history_days={max(args.days + 5, 8)}"]
    cfg = load_config(base.env, [*sets, *args.overrides])
    run_date = params.start + dt.timedelta(days=params.days)
    stamp = out / "params.json"
    lake = Lake(cfg, get_spark(cfg))
    if not stamp.is_file() or json.loads(stamp.read_text()) != params.to_json():
        generate_shop(cfg.landing.root, params)
        ingest(cfg, lake, [params.start + dt.timedelta(days=d) for d in range(params.days)], [AD_EVENTS.name, PRODUCTS.name, EVENTS.name])
        build_features(cfg, lake, [run_date], nodes=[FEATURES])
        stamp.write_text(json.dumps(params.to_json()))
    result = run_ads(cfg, lake, run_date, register=False)
    console.print(ads_metrics_table(metrics_rows(result, None, dt.datetime.now(dt.timezone.utc))))
    for split, (n, clicks, conversions, first) in result.splits.items():
        console.print(f"{split}: {n:,} impressions from {first}, {clicks:,} clicks, {conversions:,} conversions")
    if result.versus:
        other, diff = result.versus
        console.print(f"test conversion log-loss, champion {result.champion} minus {other}: {diff}: {diff.verdict(higher_is_better=False)}")
    console.print(f"deep_ctr epoch losses: {', '.join(f'{v:.4f}' for v in result.deep_losses)}")

    truth_all = json.loads((Path(cfg.landing.root) / GROUND_TRUTH_FILE).read_text())
    truth = truth_all["ads"]["impressions"]
    bundle = AdsBundle.load(result.bundle_path)
    rows, _, _, _ = load_matured(lake, run_date)
    data = from_rows(rows, bundle.item_text, len(next(iter(bundle.item_text.values()))))
    test = data.take(data.day >= result.splits[TEST][3])
    planted = np.array([truth[i] for i in test.ids])
    true_ctr, true_ctcvr = planted[:, 0], planted[:, 0] * planted[:, 1]
    table = Table(title=f"test split against the planted probabilities ({len(test):,} impressions)")
    for col in ("model", "CTR MAE", "CTR ECE vs truth", "CTCVR MAE", "CTCVR ECE vs truth", "CTR AUC", "CVR AUC", "CVR logloss"):
        table.add_column(col, justify="right")
    rows_out = [(m, ev.test.p_ctr, ev.test.p_ctcvr) for m, ev in result.evaluations.items()] + [("truth", true_ctr, true_ctcvr)]
    for model, p_ctr, p_ctcvr in rows_out:
        table.add_row(
            model, f"{np.abs(p_ctr - true_ctr).mean():.5f}", f"{M.expected_calibration_error(true_ctr, p_ctr):.5f}",
            f"{np.abs(p_ctcvr - true_ctcvr).mean():.5f}", f"{M.expected_calibration_error(true_ctcvr, p_ctcvr):.5f}",
            f"{M.roc_auc(test.click, p_ctr):.4f}", f"{M.roc_auc(test.converted, p_ctcvr):.4f}", f"{M.log_loss(test.converted, p_ctcvr):.5f}",
        )  # fmt: skip
    console.print(table)
    ids = rows[C.IMPRESSION_ID].to_pylist()
    logged = {"propensity": dict(zip(ids, rows[C.PROPENSITY].to_pylist())), "user": dict(zip(ids, rows[C.USER_ID].to_pylist()))}
    _plan_against_the_log(console, cfg, result, data, truth_all, logged)
    return 0


def _plan_against_the_log(console, cfg, result, data, truth: dict, logged: dict[str, dict]) -> None:
    """The plan bought on validation, judged on the test impressions of known viewers: estimated from the log and true."""
    from rich.table import Table

    from shoplake import columns as C
    from shoplake.ads.data import NUMERIC
    from shoplake.ads.ope import estimate
    from shoplake.ads.plan import allocate, market_of, plan_policy
    from shoplake.datagen.shop.ads import true_ad_probabilities
    from shoplake.evaluation import TEST, VALIDATION

    champion = result.evaluations[result.champion]
    test_start, valid_start = result.splits[TEST][3], result.splits[VALIDATION][3]
    valid = data.take((data.day >= valid_start) & (data.day < test_start))
    test_rows = data.day >= test_start
    test = data.take(test_rows)
    market = market_of(valid, champion.valid)
    plan = allocate(market.cells, market.budgets)
    policy = plan_policy(plan, market.ad_share)
    spend, value = sum(r.spend for r in plan), sum(r.value for r in plan)
    logged_spend = sum(market.budgets.values())
    logged_value = float((valid.conversion * valid.click * valid.num[:, NUMERIC.index(C.PRICE)]).sum()) / max(
        len(set(valid.day.tolist())), 1
    )
    console.print(f"plan for a day: {len(plan)} campaign x placement cells, spend {spend:.2f} of the logged {logged_spend:.2f}, "
                  f"expected conversion value {value:.2f} (ROAS {value / spend if spend else 0:.2f}); "
                  f"logged: value {logged_value:.2f} a day (ROAS {logged_value / logged_spend if logged_spend else 0:.2f})")  # fmt: skip

    users = np.array([logged["user"][i] for i in test.ids], dtype=object)
    known = np.array([u is not None for u in users])
    t = test.take(known)
    scores = champion.test
    p_ctr, p_ctcvr = scores.p_ctr[known], scores.p_ctcvr[known]
    price = t.num[:, NUMERIC.index(C.PRICE)]
    campaign, item, placement = t.cats[C.CAMPAIGN_ID], t.cats[C.ITEM_ID], t.placement
    cpc = np.array([market.cpc.get(c, 0.0) for c in campaign])
    logged_mu = np.array([logged["propensity"][i] for i in t.ids])
    reward = t.click * t.conversion * price - t.click * t.cost
    target = np.array([policy.get((p, c, i), 0.0) for p, c, i in zip(placement, campaign, item)])
    q = p_ctcvr * price - p_ctr * cpc
    cell_profit = {(c.placement, c.campaign): c.value - c.cost for c in market.cells}
    ad_value = {(p, c, i): prob * cell_profit.get((p, c), 0.0) for (p, c, i), prob in policy.items()}
    per_placement = {p: sum(v for (pl, _, _), v in ad_value.items() if pl == p) for p in set(placement.tolist())}
    v = np.array([per_placement[p] for p in placement])
    ev = cfg.evaluation
    est = estimate(reward, logged_mu, target, q, v, draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)

    # The truth: every ad the plan may show, in each logged slot, at its planted probabilities and the item's price.
    item_price = {}
    for i, pr in zip(data.cats[C.ITEM_ID], data.num[:, NUMERIC.index(C.PRICE)]):
        item_price.setdefault(i, pr)
    true_plan = np.zeros(len(t))
    for (p, c, i), prob in policy.items():
        rows = np.flatnonzero(placement == p)
        if not len(rows):
            continue
        ctr, cvr = true_ad_probabilities(truth, users[known][rows].tolist(), [i] * len(rows), [p] * len(rows),
                                         t.cats[C.POSITION][rows].astype(int))  # fmt: skip
        true_plan[rows] += prob * (ctr * cvr * item_price[i] - ctr * market.cpc.get(c, 0.0))
    planted = np.array([truth["ads"]["impressions"][i] for i in t.ids])
    true_logged = planted[:, 0] * planted[:, 1] * price - planted[:, 0] * cpc
    table = Table(title=f"value minus cost per slot, test impressions of known viewers ({len(t):,}); effective n {est.effective_n:,.0f}")
    for col in ("policy", "estimate", "95 % interval", "true value"):
        table.add_column(col, justify="right")
    table.add_row(
        "logged (observed)", f"{est.logged.value:.4f}", f"{est.logged.low:.4f}..{est.logged.high:.4f}", f"{true_logged.mean():.4f}"
    )
    for name, interval in (("plan, IPS", est.ips), ("plan, SNIPS", est.snips), ("plan, doubly robust", est.dr)):
        table.add_row(name, f"{interval.value:.4f}", f"{interval.low:.4f}..{interval.high:.4f}", f"{true_plan.mean():.4f}")
    console.print(table)


if __name__ == "__main__":
    exit_cleanly(main)
