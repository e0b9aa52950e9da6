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

Then the plans, judged on impressions of known viewers as value minus cost per slot
(the planted probabilities give every policy's true value there). The per-viewer plan's
settings (``ads.plan_search``) are chosen as the nightly plan chooses them
(:func:`shoplake.ads.planning.choose_settings`): each combination's plan, made before
the validation days, is judged on them, with its doubly robust margin over the logged
policy and the true margin printed. Then, made with the champion's scores as of the
first test day (the state after the days before it, the traffic and budgets of their
newest ``ads.plan_days``), the per-viewer plan with the chosen settings and with
``ads.plan_*`` as set (:mod:`shoplake.ads.policy`) and the campaign x placement plan
(:mod:`shoplake.ads.plan`) are judged on the test impressions: IPS, self-normalised IPS
and doubly robust estimates of the value and of the margin over the logged policy
(paired over the same impressions), with bootstrap intervals, beside the true value
and true margin, and the reward model's own expectation (what DR corrects). ``--chart`` writes the reliability diagram of every model's test pCTCVR
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
    """The per-viewer plan's settings chosen on validation, the plans judged on test (known viewers); their returns on spend."""
    from rich.table import Table

    from shoplake import columns as C
    from shoplake.ads.candidates import UNKNOWN_VIEWER
    from shoplake.ads.data import NUMERIC
    from shoplake.ads.ope import estimate
    from shoplake.ads.plan import allocate, market_of, plan_policy
    from shoplake.ads.planning import choose_settings, judge, newest_days, plan_market, reward
    from shoplake.ads.planning import plan_policy as viewer_policy
    from shoplake.ads.policy import Policy, campaign_spend
    from shoplake.datagen.shop.ads import true_ad_probabilities
    from shoplake.evaluation import TEST, VALIDATION

    bundle_score = AdsBundleScore(result.bundle_path)
    valid_start, test_start = result.splits[VALIDATION][3], result.splits[TEST][3]
    history = data.take(data.day < test_start)
    known = data.users != UNKNOWN_VIEWER
    v = data.take(known & (data.day >= valid_start) & (data.day < test_start))
    t = data.take(known & (data.day >= test_start))
    cpc = {c["campaign_id"]: c["cpc"] for c in truth["ads"]["campaigns"]}
    item_price = dict(zip(data.cats[C.ITEM_ID].tolist(), data.num[:, NUMERIC.index(C.PRICE)].tolist()))
    ev = cfg.evaluation
    boot = {"draws": ev.bootstrap_draws, "level": ev.confidence, "seed": ev.seed}

    def planted(split, ads) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per slot of ``split``: the true conversion value and spend of each of ``ads`` there, and of the logged ad."""
        positions = split.cats[C.POSITION].astype(int)
        value, spend = np.zeros((len(split), len(ads))), np.zeros((len(split), len(ads)))
        for a, (campaign, item) in enumerate(ads):
            ctr, cvr = true_ad_probabilities(truth, split.users.tolist(), [item] * len(split), split.placement.tolist(), positions)
            value[:, a], spend[:, a] = ctr * cvr * item_price[item], ctr * cpc[campaign]
        shown = np.array([truth["ads"]["impressions"][i] for i in split.ids])
        logged_spend = shown[:, 0] * np.array([cpc[c] for c in split.cats[C.CAMPAIGN_ID]])
        return value, spend, shown[:, 0] * shown[:, 1] * split.num[:, NUMERIC.index(C.PRICE)], logged_spend

    def per_slot(judged) -> np.ndarray:
        """The judged policy's probabilities of every ad in each judged slot (its context's row)."""
        out = np.zeros((len(judged.context), judged.policy.probabilities.shape[1]))
        out[judged.context >= 0] = judged.policy.probabilities[judged.context[judged.context >= 0]]
        return out

    def describe(policy) -> str:
        bound = "no bound" if policy.max_ratio is None else f"each ad at most {policy.max_ratio:g} x its logged share"
        return f"{policy.epsilon:.0%} exploring, {bound}"

    # The settings, chosen on the validation days by a plan made before them.
    choice = choose_settings(cfg, data.take(data.day < valid_start), v, bundle_score)
    v_value, v_spend, v_logged_value, v_logged_spend = planted(v, list(zip(choice.market.campaigns.tolist(),
                                                                           choice.market.items.tolist())))  # fmt: skip
    table = Table(title=f"the per-viewer plan's settings on validation ({len(v):,} impressions of known viewers from {valid_start}; "
                        f"planned before them): doubly robust margin over the logged policy per slot")  # fmt: skip
    for col in ("settings", "effective n", "DR margin", "95 % interval", "true margin", "chosen"):
        table.add_column(col, justify="right")
    for settings, judged in choice.tried:
        label = ", ".join(f"{k.removeprefix('plan_')} {val}" for k, val in settings.items()) or "as set"
        if judged is None:
            table.add_row(label, "", "no plan keeps the budgets", "", "", "")
            continue
        m, probs = judged.estimates.dr_margin, per_slot(judged)
        true_margin = ((probs * (v_value - v_spend)).sum(axis=1) - v_logged_value + v_logged_spend).mean()
        table.add_row(label, f"{judged.estimates.effective_n:,.0f}", f"{m.value:+.4f}", f"{m.low:+.4f}..{m.high:+.4f}",
                      f"{true_margin:+.4f}", "yes" if settings == choice.settings else "")  # fmt: skip
    console.print(table)

    # The per-viewer plans as of the first test day: with the chosen settings, and with ads.plan_* as set.
    market = plan_market(cfg, history, bundle_score)
    t_value, t_spend, t_logged_value, t_logged_spend = planted(t, list(zip(market.campaigns.tolist(), market.items.tolist())))
    judged_plans = {}
    for name, plan_cfg in (("per-viewer plan", choice.cfg), ("per-viewer plan as set", cfg)):
        policy = viewer_policy(plan_cfg, market)
        judged_plans[name] = judge(plan_cfg, market, policy, t)
    policy = judged_plans["per-viewer plan"].policy
    budget, spent = sum(market.budgets.values()), campaign_spend(market, policy.probabilities)
    exp_value = float((market.traffic[:, None] * policy.probabilities * market.value).sum())
    console.print(f"per-viewer plan: {len(market.traffic):,} viewer x placement contexts, {len(market.items)} ads, {describe(policy)} "
                  f"(chosen on validation); spend {sum(spent.values()):.2f} a day of the budgets' {budget:.2f} (every campaign within "
                  f"its budget: {all(spent[c] <= market.budgets[c] + 1e-6 for c in spent)}), expected value {exp_value:.2f} "
                  f"(ROAS {exp_value / max(sum(spent.values()), 1e-9):.2f}); budget multipliers "
                  f"{', '.join(f'{c} {m:.2f}' for c, m in policy.multipliers.items())}")  # fmt: skip

    # The campaign x placement plan, bought on the same days' market with the champion's scores, as a policy over the same
    # contexts, so that its doubly robust estimate reads the same reward model as the per-viewer plans'.
    cells = market_of(newest_days(history, cfg.ads.plan_days), bundle_score(newest_days(history, cfg.ads.plan_days)))
    placement_policy = plan_policy(allocate(cells.cells, cells.budgets), cells.ad_share)
    ads = list(zip(market.campaigns.tolist(), market.items.tolist()))
    shares = np.array([[placement_policy.get((p, c, i), 0.0) for c, i in ads] for p in market.placements.tolist()])
    judged_plans["campaign x placement plan"] = judge(cfg, market, Policy(shares, {}, 0.0), t)

    ad_index = {a: k for k, a in enumerate(ads)}
    logged_ad = np.array([ad_index.get(a, -1) for a in zip(t.cats[C.CAMPAIGN_ID].tolist(), t.cats[C.ITEM_ID].tolist())])
    true_net, true_logged = t_value - t_spend, (t_logged_value - t_logged_spend).mean()
    true_q = np.where(logged_ad >= 0, true_net[np.arange(len(t)), np.maximum(logged_ad, 0)], 0.0)
    est = judged_plans["per-viewer plan"].estimates
    table = Table(title=f"value minus cost per slot, test impressions of known viewers ({len(t):,} from {test_start}), 95 % intervals; "
                        f"margin: the policy minus the logged one, paired over the same impressions")  # fmt: skip
    for col in ("policy", "effective n", "estimator", "value", "interval", "margin", "interval", "verdict", "true value", "true margin"):
        table.add_column(col, justify="right")
    table.add_row("logged", "", "observed", f"{est.logged.value:.4f}", f"{est.logged.low:.4f}..{est.logged.high:.4f}", "", "", "",
                  f"{true_logged:.4f}", "")  # fmt: skip
    net_of = {}
    for name, j in judged_plans.items():
        label = name if name == "campaign x placement plan" else f"per-viewer plan ({describe(j.policy)})"
        probs = per_slot(j)
        net_of[name] = (probs * t_value).sum(axis=1), (probs * t_spend).sum(axis=1)
        truth_net = (probs * true_net).sum(axis=1)
        # DR with the planted probabilities as its reward model: how much of DR's spread the model could remove.
        planted_dr = estimate(reward(t), t.propensity, j.target, true_q, truth_net, **boot)
        e = j.estimates
        for estimator, value, margin in (("IPS", e.ips, e.ips_margin), ("SNIPS", e.snips, e.snips_margin), ("DR", e.dr, e.dr_margin),
                                         ("DR, planted model", planted_dr.dr, planted_dr.dr_margin)):  # fmt: skip
            table.add_row(label, f"{e.effective_n:,.0f}", estimator, f"{value.value:.4f}", f"{value.low:.4f}..{value.high:.4f}",
                          f"{margin.value:+.4f}", f"{margin.low:+.4f}..{margin.high:+.4f}", margin.verdict(), f"{truth_net.mean():.4f}",
                          f"{truth_net.mean() - true_logged:+.4f}")  # fmt: skip
        # The reward model alone (the direct method), what DR corrects with the logged rewards.
        table.add_row(label, "", "model alone", f"{j.model_value.mean():.4f}", "", f"{(j.model_value - j.model_logged).mean():+.4f}",
                      "", "", f"{truth_net.mean():.4f}", f"{truth_net.mean() - true_logged:+.4f}")  # fmt: skip
    console.print(table)
    price = t.num[:, NUMERIC.index(C.PRICE)]
    observed_spend = float((t.click * t.cost).sum())
    observed_value = float((t.click * t.conversion * price).sum())
    (viewer_value, viewer_spend), (cell_value, cell_spend) = net_of["per-viewer plan"], net_of["campaign x placement plan"]
    return {
        "logged": (observed_value / max(observed_spend, 1e-9), float(t_logged_value.sum() / t_logged_spend.sum())),
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
