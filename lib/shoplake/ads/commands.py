"""The entry points of the ads models: ``train``, ``score`` and ``plan`` (``shoplake train-ads``, ``score-ads``, ``plan-ads``)."""

from __future__ import annotations

import datetime as dt

from shoplake import entry
from shoplake.entry import config_from_args

TRAIN_DOC = """Train, compare, calibrate and register the ad click and conversion models.

Inputs:  gold.ad_features of --run-date D (default: the latest partition): every impression
         of ads.history_days before D with point-in-time features, its click and its
         conversion once matured (ads.maturity_days); gold.ad_items for the ads' text,
         embedded by the text encoder (text_encoder.*).
Outputs: the matured impressions split by time into training, validation and test
         (ads.validation_share, ads.test_share). Every model of ads.models (historic_ctr,
         logistic on hashed crosses, gbt, the deep_ctr network trained ESMM-style on Ray
         Train) is calibrated on validation (ads.calibration) and measured on validation
         and test, overall and per placement: ROC-AUC, log-loss, normalized entropy and
         expected calibration error of clicks (pCTR) and conversions (pCTCVR). They go to
         ops.model_metrics (task ads, D's rows replaced) and are printed as a table. The
         champion (lowest validation conversion log-loss) is saved with its calibrators
         under <runs_dir>/ads/<name>/bundle and registered as ads.registered_model with
         the serving alias.
Parameters: --run-date, --name (run folder prefix), --no-register, --env, --set key=value
         (ads.*, ray.num_workers).

    python ray_apps/train.py ads --env local --run-date 2024-03-31
"""


def train_parser():
    return entry.train_parser("train.py ads", TRAIN_DOC, "features date (default: the latest in gold.ad_features)", "ads_<run date>_<time>")


def train(argv: list[str] | None = None) -> int:
    from shoplake.ads.report import ads_metrics_table
    from shoplake.ads.train import MissingAdFeaturesError, TooFewImpressionsError, metrics_rows, run_ads

    cfg, console, result = entry.run_training(
        train_parser().parse_args(argv), "ads", run_ads, (MissingAdFeaturesError, TooFewImpressionsError)
    )
    if result is None:
        return 2
    console.print(ads_metrics_table(metrics_rows(result, result.mlflow_run_id, dt.datetime.now(dt.timezone.utc))))
    for split, (impressions, clicks, conversions, first_day) in result.splits.items():
        console.print(f"{split}: {impressions:,} impressions from {first_day}, {clicks:,} clicks, {conversions:,} conversions")
    if result.versus:
        other, diff = result.versus
        console.print(
            f"test conversion log-loss, {result.champion} minus {other}: {diff} (95 % interval): {diff.verdict(higher_is_better=False)}"
        )
    console.print(f"ops.model_metrics v{result.metrics_version}; bundle {result.bundle_path}")
    if result.model_version:
        console.print(f"registered {cfg.ads.registered_model} version {result.model_version} ({result.champion}) "
                      f"as '{cfg.registry.serving_alias}' (MLflow run {result.mlflow_run_id})")  # fmt: skip
    return 0


SCORE_DOC = """Score every viewer for every ad in every placement with the serving ads model (Ray Data).

Inputs:  the registered ads model version that the alias registry.serving_alias names
         (or --model-version) of ads.registered_model; gold.ad_state, gold.ad_viewers
         and gold.ad_items of the run date D: the state an impression at D's midnight
         would see; the budget multipliers of D's serving.ad_plan (when there is one).
         An ad the model has no text embedding for is encoded by the text encoder
         (text_encoder.*) when the model reads text.
Outputs: serving.ad_scores: per viewer of the window (and the unknown viewer, user_id
         null), placement and ad (item, campaign) at position 1 and hour 0: calibrated
         pCTR, pCVR and pCTCVR, the expected value (pCTCVR x price - pCTR x cost per
         click), the ranking value (pCTCVR x price - (1 + budget multiplier) x pCTR x
         cost per click, the campaign's multiplier in D's plan; the expected value
         without one) with the multiplier and the plan's run date (null without a plan
         of D), the ad's rank by ranking value in the placement, the model version, run
         date and scoring time; one Delta commit replacing D's partition. Prints one line.
Parameters: --run-date (default: the latest in gold.ad_state), --model-version, --env,
         --set key=value.

    python ray_apps/score.py ads --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/score.py ads --env cluster
"""


def score_parser():
    return entry.score_parser("score.py ads", SCORE_DOC, "state date (default: the latest in gold.ad_state)")


def score(argv: list[str] | None = None) -> int:
    from shoplake.ads.score import MissingAdStateError, score_ads
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.registry import NoServingModel

    args = score_parser().parse_args(argv)
    cfg = config_from_args(args)
    init_ray(cfg)
    try:
        r = score_ads(cfg, Lake(cfg), args.run_date, version=args.model_version)
    except (NoServingModel, MissingAdStateError) as exc:
        raise SystemExit(f"error: {exc}") from None
    ranked = f"ranked by the plan of {r.plan_run_date}" if r.plan_run_date else "no plan, ranked by expected value"
    print(
        f"scored {r.viewers} viewers x {r.ads} ads in {r.placements} placements ({r.rows} rows, {r.new_ads} new ads encoded) "
        f"with {r.model_name} version {r.model_version} for {r.run_date}, {ranked} -> serving.ad_scores v{r.version}; {r.seconds:.1f} s"
    )
    return 0


PLAN_DOC = """Plan the ads of the run date per viewer and placement within every campaign's budget, and judge the plan.

Inputs:  the registered ads model version that the alias registry.serving_alias names
         (or --model-version) of ads.registered_model; gold.ad_features and gold.ad_items
         of the run date D.
Outputs: serving.ad_plan (D's partition replaced): per campaign and placement the
         impressions, clicks, conversions, spend, value and ROAS a day that the
         per-viewer plan expects, with the campaign's daily budget, budget multiplier,
         the exploration share and the model version. The plan maximises expected
         value minus cost over the viewers and placements of the newest ads.plan_days
         (a linear programme within each campaign's budget, ads.plan_exploration of
         every slot following the logged policy, ads.plan_max_ratio bounding each ad's
         share by a multiple of the logged policy's; both chosen among ads.plan_search
         by the surest margin over the logged policy on the validation days). ops.model_metrics (task ads, model
         plan, slice test, and validation for the chosen settings; the plan's rows of
         D replaced): the same method made as of the first test day and judged on the
         test impressions by IPS, self-normalised IPS and doubly robust estimates of
         value minus cost per slot and of the margin over the logged policy (paired),
         with bootstrap intervals, beside the logged policy's observed value.
Parameters: --run-date (default: the latest in gold.ad_features), --model-version,
         --env, --set key=value (ads.plan_days, ads.plan_exploration, ads.plan_max_ratio,
         ads.plan_search).

    python ray_apps/plan.py ads --env local --run-date 2024-03-31
"""


def plan_parser():
    return entry.score_parser("plan.py ads", PLAN_DOC, "features date (default: the latest in gold.ad_features)")


def plan(argv: list[str] | None = None) -> int:
    from shoplake.ads.planning import plan_ads
    from shoplake.ads.policy import InfeasiblePlanError
    from shoplake.ads.train import MissingAdFeaturesError
    from shoplake.lake import Lake
    from shoplake.registry import NoServingModel

    args = plan_parser().parse_args(argv)
    cfg = entry.config_from_args(args)
    try:
        r = plan_ads(cfg, Lake(cfg), args.run_date, version=args.model_version)
    except (NoServingModel, MissingAdFeaturesError, InfeasiblePlanError) as exc:
        raise SystemExit(f"error: {exc}") from None
    spend = r.spend()
    print(
        f"planned {len(r.market.traffic)} viewer x placement contexts, {len(r.market.items)} ads, spend {sum(spend.values()):.2f} a day "
        f"with {r.model_name} version {r.model_version} for {r.run_date} -> serving.ad_plan v{r.plan_version}"
    )
    if r.judgement is not None:
        e, chosen = r.judgement.estimates, r.choice.settings if r.choice else {}
        print(
            f"settings chosen on validation: {', '.join(f'{k}={v}' for k, v in chosen.items()) or 'as set'}; judged on "
            f"{len(r.judgement.target)} test impressions, value minus cost per slot: logged {e.logged}, IPS {e.ips}, DR {e.dr}; "
            f"margin over the logged policy: IPS {e.ips_margin}, SNIPS {e.snips_margin}, DR {e.dr_margin} "
            f"({e.dr_margin.verdict()}); ops.model_metrics v{r.metrics_version}"
        )
    return 0
