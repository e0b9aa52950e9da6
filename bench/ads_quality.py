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
calibration error of clicks and conversions), the settings the searches chose on
validation and, per model on the test split, the mean absolute error and the
calibration error of its calibrated pCTR and pCTCVR against the true probabilities the
generator planted, beside the same figures of the truth itself (the ceiling any model
can reach on these labels).

Then the plans, made with the champion's scores as of the first test day (the state
after the days before it, the traffic and budgets of their newest ``ads.plan_days``),
are judged on the test impressions of known viewers, as value minus cost per slot: the
per-viewer plan (:mod:`shoplake.ads.policy`) and the campaign x placement plan
(:mod:`shoplake.ads.plan`), each by IPS, self-normalised IPS and doubly robust
estimates with bootstrap intervals, beside its true value under the planted
probabilities. ``--chart`` writes the reliability diagram of every model's test pCTCVR
(observed and planted) and the plans' return on ad spend as SVG and PNG.

Run::

    .venv/bin/python bench/ads_quality.py
    .venv/bin/python bench/ads_quality.py --users 600 --days 60 --out data/ads-bench-600 --chart docs/img/ads_calibration
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
    parser.add_argument("--chart", default=None, help="write the reliability and return chart to this stem (.svg and .png)")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

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
    for model, found in result.searches.items():
        console.print(f"{model} search: {found.summary()}")

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
    _main_model_against_the_baselines(console, cfg, result, test)
    returns = _plans_against_the_log(console, cfg, result, data, truth_all)
    console.print("return on ad spend (expected or observed; true): " + "; ".join(
        f"{name} {seen:.2f}; {true:.2f}" for name, (seen, true) in returns.items()))  # fmt: skip
    if args.chart:
        from shoplake.ads.chart import write_ads_chart

        models = {m: (ev.test.p_ctcvr, test.converted, true_ctcvr) for m, ev in result.evaluations.items()}
        title = f"Ads on the synthetic shop ({args.users} customers, {args.days} days): test split"
        for path in write_ads_chart(ROOT / args.chart, models, returns, title):
            console.print(f"wrote {path}")
    return 0


def _main_model_against_the_baselines(console, cfg, result, test) -> None:
    """Per model on test: conversion log-loss and ROC-AUC with intervals, and the main model's paired difference to each."""
    from rich.table import Table

    from shoplake.ads import metrics as M
    from shoplake.ads.models import DEEP_CTR
    from shoplake.evaluation import bootstrap_statistic, paired_difference

    if DEEP_CTR not in result.evaluations:
        return
    ev = cfg.evaluation
    boot = {"draws": ev.bootstrap_draws, "level": ev.confidence, "seed": ev.seed}
    y = test.converted
    main = result.evaluations[DEEP_CTR].test.p_ctcvr
    table = Table(title="test conversions (pCTCVR): each model, and deep_ctr minus it, with 95 % bootstrap intervals")
    for col in ("model", "log-loss", f"{DEEP_CTR} minus it", "ROC-AUC", f"{DEEP_CTR} minus it"):
        table.add_column(col, justify="right")
    for model, evaluation in result.evaluations.items():
        p = evaluation.test.p_ctcvr
        loss, auc = result.test_log_loss[model], bootstrap_statistic(M.roc_auc, y, p, **boot)
        row = [model, f"{loss.value:.5f} ({loss.low:.5f}..{loss.high:.5f})", "", f"{auc.value:.4f} ({auc.low:.4f}..{auc.high:.4f})", ""]
        if model != DEEP_CTR:
            d_loss = paired_difference(M.row_log_loss(y, main), M.row_log_loss(y, p), **boot)
            d_auc = bootstrap_statistic(lambda yy, a, b: M.roc_auc(yy, a) - M.roc_auc(yy, b), y, main, p, **boot)
            row[2] = f"{d_loss.value:+.5f} ({d_loss.low:+.5f}..{d_loss.high:+.5f}) {d_loss.verdict(higher_is_better=False)}"
            row[4] = f"{d_auc.value:+.4f} ({d_auc.low:+.4f}..{d_auc.high:+.4f}) {d_auc.verdict()}"
        table.add_row(*row)
    console.print(table)


def _plans_against_the_log(console, cfg, result, data, truth: dict) -> dict[str, tuple[float, float | None]]:
    """Both plans made as of the first test day, judged on the test impressions of known viewers; their returns on spend."""
    from rich.table import Table

    from shoplake import columns as C
    from shoplake.ads.candidates import UNKNOWN_VIEWER
    from shoplake.ads.data import NUMERIC
    from shoplake.ads.plan import allocate, market_of, plan_policy
    from shoplake.ads.planning import judge, make_plan, newest_days, reward
    from shoplake.ads.policy import campaign_spend
    from shoplake.datagen.shop.ads import true_ad_probabilities
    from shoplake.evaluation import TEST

    bundle_score = AdsBundleScore(result.bundle_path)
    test_start = result.splits[TEST][3]
    history = data.take(data.day < test_start)
    test_all = data.take(data.day >= test_start)
    known = test_all.users != UNKNOWN_VIEWER
    t = test_all.take(known)
    price = t.num[:, NUMERIC.index(C.PRICE)]
    cpc = {c["campaign_id"]: c["cpc"] for c in truth["ads"]["campaigns"]}
    item_price = dict(zip(data.cats[C.ITEM_ID].tolist(), data.num[:, NUMERIC.index(C.PRICE)].tolist()))
    positions = t.cats[C.POSITION].astype(int)

    def true_value(probability_of) -> tuple[np.ndarray, np.ndarray]:
        """Per test slot: the true conversion value and the true spend of a policy (ad -> probability per slot)."""
        value, spend = np.zeros(len(t)), np.zeros(len(t))
        for (campaign, item), prob in probability_of.items():
            ctr, cvr = true_ad_probabilities(truth, t.users.tolist(), [item] * len(t), t.placement.tolist(), positions)
            value += prob * ctr * cvr * item_price[item]
            spend += prob * ctr * cpc[campaign]
        return value, spend

    # The per-viewer plan.
    market, policy = make_plan(cfg, history, bundle_score)
    judged = judge(cfg, market, policy, t)
    per_slot = {}
    for a, ad in enumerate(zip(market.campaigns.tolist(), market.items.tolist())):
        p = np.zeros(len(t))
        p[judged.context >= 0] = policy.probabilities[judged.context[judged.context >= 0], a]
        per_slot[ad] = p
    viewer_value, viewer_spend = true_value(per_slot)
    budget, spent = sum(market.budgets.values()), campaign_spend(market, policy.probabilities)
    exp_value = float((market.traffic[:, None] * policy.probabilities * market.value).sum())
    console.print(f"per-viewer plan: {len(market.traffic):,} viewer x placement contexts, {len(market.items)} ads, exploration "
                  f"{policy.epsilon:.0%}; spend {sum(spent.values()):.2f} a day of the budgets' {budget:.2f} (every campaign within its "
                  f"budget: {all(spent[c] <= market.budgets[c] + 1e-6 for c in spent)}), expected value {exp_value:.2f} "
                  f"(ROAS {exp_value / max(sum(spent.values()), 1e-9):.2f}); budget multipliers "
                  f"{', '.join(f'{c} {m:.2f}' for c, m in policy.multipliers.items())}")  # fmt: skip

    # The campaign x placement plan, bought on the same days' market with the champion's validation scores.
    valid = newest_days(history, cfg.ads.plan_days)
    valid_scores = bundle_score(valid)
    cells = market_of(valid, valid_scores)
    placement_policy = plan_policy(allocate(cells.cells, cells.budgets), cells.ad_share)
    target = np.array([placement_policy.get((p, c, i), 0.0) for p, c, i in zip(t.placement, t.cats[C.CAMPAIGN_ID], t.cats[C.ITEM_ID])])
    by_ad = {}
    for (p, c, i), prob in placement_policy.items():
        by_ad.setdefault((c, i), np.zeros(len(t)))[t.placement == p] += prob
    cell_value, cell_spend = true_value(by_ad)
    scores = bundle_score(t)
    q_cell = scores.p_ctcvr * price - scores.p_ctr * np.array([cells.cpc.get(c, 0.0) for c in t.cats[C.CAMPAIGN_ID]])
    # Its reward model knows the campaign x placement averages only (what the plan itself was bought on).
    cell_profit = {(c.placement, c.campaign): c.value - c.cost for c in cells.cells}
    per_placement = {p: sum(prob * cell_profit.get((pl, c), 0.0) for (pl, c, _), prob in placement_policy.items() if pl == p)
                     for p in set(t.placement.tolist())}  # fmt: skip
    v_cell = np.array([per_placement[p] for p in t.placement])
    ev = cfg.evaluation
    from shoplake.ads.ope import estimate

    cell_est = estimate(reward(t), t.propensity, target, q_cell, v_cell, draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)

    planted = np.array([truth["ads"]["impressions"][i] for i in t.ids])
    logged_cost = np.array([cpc[c] for c in t.cats[C.CAMPAIGN_ID]])
    logged_value, logged_spend = planted[:, 0] * planted[:, 1] * price, planted[:, 0] * logged_cost
    table = Table(title=f"value minus cost per slot, test impressions of known viewers ({len(t):,}); effective n: per-viewer plan "
                        f"{judged.estimates.effective_n:,.0f}, campaign x placement plan {cell_est.effective_n:,.0f}")  # fmt: skip
    for col in ("policy", "estimate", "95 % interval", "true value"):
        table.add_column(col, justify="right")
    est = judged.estimates
    table.add_row("logged (observed)", f"{est.logged.value:.4f}", f"{est.logged.low:.4f}..{est.logged.high:.4f}",
                  f"{(logged_value - logged_spend).mean():.4f}")  # fmt: skip
    for label, e, truth_value in (("per-viewer plan", est, viewer_value - viewer_spend), ("campaign x placement plan", cell_est,
                                                                                          cell_value - cell_spend)):  # fmt: skip
        for name, interval in (("IPS", e.ips), ("SNIPS", e.snips), ("doubly robust", e.dr)):
            table.add_row(
                f"{label}, {name}", f"{interval.value:.4f}", f"{interval.low:.4f}..{interval.high:.4f}", f"{truth_value.mean():.4f}"
            )
    console.print(table)
    observed_spend = float((t.click * t.cost).sum())
    observed_value = float((t.click * t.conversion * price).sum())
    return {
        "logged": (observed_value / max(observed_spend, 1e-9), float(logged_value.sum() / logged_spend.sum())),
        "per-viewer plan": (exp_value / max(sum(spent.values()), 1e-9), float(viewer_value.sum() / viewer_spend.sum())),
        "campaign x placement": (sum(c.value for c in cells.cells) / max(sum(c.cost for c in cells.cells), 1e-9),
                                 float(cell_value.sum() / cell_spend.sum())),
    }  # fmt: skip


class AdsBundleScore:
    """The calibrated scores of a saved ads bundle, as a function of impressions."""

    def __init__(self, folder: str):
        from shoplake.ads.bundle import AdsBundle

        self.bundle = AdsBundle.load(folder)

    def __call__(self, data):
        return self.bundle.score(data)


if __name__ == "__main__":
    exit_cleanly(main)
