"""``shoplake``: the command line of the platform.

Step commands (``ingest``, ``features``, and later training and scoring) run the same
``main()`` functions as ``spark-submit jobs/...`` and ``ray job submit ... ray_apps/...``;
``nightly`` chains them for one day or a range, and ``demo`` builds a small
synthetic shop and runs the nightly flow over it. ``cluster up|down|status`` runs
local Spark standalone and Ray clusters to test jobs the way they run on real ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from shoplake.config import Config, default_conf_dir
from shoplake.entry import add_config_args, add_date_args, config_from_args, exit_cleanly, parse_date, run_dates

log = logging.getLogger(__name__)
console = Console()


def load_entry_point(relative: str):
    """Import an entry-point module (``jobs/ingest.py``) from the project checkout."""
    path = default_conf_dir().parent / relative
    if not path.is_file():
        raise SystemExit(f"entry point {path} not found: run shoplake from a project checkout or set SHOPLAKE_CONF_DIR")
    spec = importlib.util.spec_from_file_location(f"shoplake_entry_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def lake_table(cfg: Config) -> Table:
    """A table of the lake: every existing table with version, rows and quarantined rows."""
    from shoplake.lake import Lake
    from shoplake.schemas.bronze import QUARANTINE

    lake = Lake(cfg)
    out = Table(title=f"lake {cfg.lake.root}")
    for col in ("table", "version", "rows", "quarantined rows"):
        out.add_column(col, justify="left" if col == "table" else "right")
    for spec in lake.tables():
        if spec.layer == "quarantine":
            continue
        quarantined = ""
        if spec.layer == "bronze" and spec.name in QUARANTINE and lake.exists(QUARANTINE[spec.name]):
            quarantined = f"{lake.row_count(QUARANTINE[spec.name]):,}"
        out.add_row(spec.full_name, str(lake.version(spec)), f"{lake.row_count(spec):,}", quarantined)
    return out


def cmd_generate(cfg: Config, args: argparse.Namespace) -> int:
    from shoplake.datagen.synthetic import ShopParams, generate_shop

    g = cfg.generate
    params = ShopParams(
        days=args.days or g.days,
        users=args.users or g.users,
        items=args.items or g.items,
        seed=g.seed if args.seed is None else args.seed,
        start=args.start or dt.date.fromisoformat(g.start),
        fraud_rate=g.fraud_rate,
        tickets_per_order=g.tickets_per_order,
    )
    out = args.out or cfg.landing.root
    with _progress() as progress:
        task = progress.add_task(f"generating shop into {out}", total=params.days)
        summary = generate_shop(out, params, progress=lambda done, total: progress.update(task, completed=done))
    table = Table(title=f"synthetic shop ({params.days} days from {params.start})")
    table.add_column("source")
    table.add_column("rows", justify="right")
    for source, rows in summary["rows"].items():
        table.add_row(source, f"{rows:,}")
    console.print(table)
    return 0


def cmd_import(cfg: Config, args: argparse.Namespace) -> int:
    out = args.out or cfg.landing.root
    if args.dataset == "online-retail":
        from shoplake.datagen.online_retail import import_online_retail as run
    elif args.dataset == "bitext":
        from shoplake.datagen.bitext import import_bitext as run
    else:
        from shoplake.datagen.pricerunner import import_pricerunner as run
    with console.status(f"importing {args.dataset} from {args.src} into {out}"):
        report = run(args.src, out)
    console.print_json(json.dumps(report, default=str))
    return 0


def run_nightly(
    cfg: Config,
    days: list[dt.date],
    sources: list[str] | None = None,
    *,
    recommend: bool = True,
    forecast: bool = True,
    fraud: bool = True,
    support: bool = True,
    categorize: bool = True,
) -> None:
    """Run the nightly steps for the landing days ``days``.

    Ingest loads the days' files; the features are then built for the morning after
    the last day, so they use everything ingested and nothing later. With
    ``recommend``, the recommenders are trained and evaluated on those features, the
    main one registered, and every user's recommendations scored into the lake. With
    ``forecast``, the forecasters are backtested, the main one registered, and every
    item's forecasts and replenishment plan written to the lake. With ``fraud``, the
    fraud models are trained and compared on the matured payments, the champion
    registered, and the last day's payments scored into the lake. With ``support``, the
    intent models are fine-tuned and compared on the labelled support messages and the
    champion registered with its hand-off threshold and answers. With ``categorize``,
    the product category models are fine-tuned and compared, the champion registered
    and every product's predicted category written to the lake.
    """
    from shoplake.features.run import build_features
    from shoplake.ingest.run import ingest
    from shoplake.lake import Lake

    lake = Lake(cfg)
    todo = list(sources or cfg.ingest.sources)
    features_for = days[-1] + dt.timedelta(days=1)
    with _progress() as progress:
        task = progress.add_task(f"ingest {days[0]}..{days[-1]}", total=len(todo))
        ingest(cfg, lake, days, sources, on_source_done=lambda name: progress.update(task, advance=1, description=f"ingest: {name} written"))
        progress.update(task, completed=len(todo), description=f"ingest {days[0]}..{days[-1]} committed")
        task = progress.add_task(f"features for {features_for}", total=1)
        build_features(cfg, lake, [features_for], with_holdout=True)
        progress.update(task, completed=1, description=f"features for {features_for} committed")
        if recommend:
            _recommend(cfg, lake, features_for, progress)
        if forecast:
            _forecast(cfg, lake, features_for, progress)
        if fraud:
            _fraud(cfg, lake, features_for, progress)
        if support:
            _text_models(cfg, lake, features_for, progress, "support")
        if categorize:
            _text_models(cfg, lake, features_for, progress, "categorization")
    if recommend or forecast or fraud or support or categorize:
        console.print(*_metrics_of(cfg, lake, features_for))


def _recommend(cfg: Config, lake, run_date: dt.date, progress) -> None:
    from shoplake.ray_runtime import init_ray
    from shoplake.scoring.recommendations import score_recommendations
    from shoplake.training.recommendation import run_recommendation

    init_ray(cfg)
    steps = len(cfg.recommender.models) * 2 + 4
    task = progress.add_task("recommenders", total=steps)
    result = run_recommendation(
        cfg, lake, run_date, on_step=lambda text: progress.update(task, advance=1, description=f"recommenders: {text}")
    )
    progress.update(task, completed=steps, description=f"recommenders: {result.main_model} v{result.model_version} registered")
    task = progress.add_task("scoring serving.recommendations", total=1)
    scored = score_recommendations(cfg, lake, run_date)
    progress.update(task, completed=1, description=f"scoring: {scored.rows:,} recommendations for {scored.users:,} users")


def _forecast(cfg: Config, lake, run_date: dt.date, progress) -> None:
    from shoplake.ray_runtime import init_ray
    from shoplake.scoring.forecasts import score_forecasts
    from shoplake.training.forecasting import run_forecasting

    init_ray(cfg)
    fc = cfg.forecasting
    steps = len(fc.models) * fc.backtest_origins + 4
    task = progress.add_task("forecasters", total=steps)
    result = run_forecasting(
        cfg, lake, run_date, on_step=lambda text: progress.update(task, advance=1, description=f"forecasters: {text}")
    )
    progress.update(task, completed=steps, description=f"forecasters: {result.main_model} v{result.model_version} registered")
    task = progress.add_task("forecasting serving.forecasts", total=1)
    scored = score_forecasts(cfg, lake, run_date)
    progress.update(
        task, completed=1,
        description=f"forecasts: {scored.items:,} items x {fc.horizon_days} days, {scored.items_to_order:,} items to reorder",
    )  # fmt: skip
    if result.chart_path:
        console.print(f"actual vs forecast at the last backtest cut-off: {result.chart_path}")


def _fraud(cfg: Config, lake, run_date: dt.date, progress) -> None:
    """Train and register the fraud models, then score the last day's payments.

    A shop without payments (Online Retail has none) skips the step. A shop whose
    matured payments cannot train a model yet (too young, no chargebacks so far) gets
    a warning instead of a failed night, and its payments are scored with the model
    registered earlier, if there is one.
    """
    from shoplake.ray_runtime import init_ray
    from shoplake.registry import NoServingModel
    from shoplake.schemas.fraud import TXN_FEATURES
    from shoplake.scoring.fraud import score_fraud
    from shoplake.training.fraud import TooFewLabelsError, run_fraud

    if run_date not in lake.run_dates(TXN_FEATURES):
        console.print(f"fraud step skipped: no {TXN_FEATURES.full_name} for {run_date} (the shop's payments are not ingested)")
        return
    init_ray(cfg)
    steps = len(cfg.fraud.models) + 4
    task = progress.add_task("fraud models", total=steps)
    try:
        result = run_fraud(cfg, lake, run_date, on_step=lambda text: progress.update(task, advance=1, description=f"fraud models: {text}"))
    except TooFewLabelsError as exc:
        progress.update(task, completed=steps, description="fraud models: not trained")
        console.print(f"[yellow]fraud models not trained for {run_date}: {exc}[/yellow]")
    else:
        progress.update(task, completed=steps, description=f"fraud models: champion {result.champion} v{result.model_version} registered")
        console.print(f"fraud precision-recall curves on the test split: {result.chart_path}")
    task = progress.add_task("scoring serving.fraud_scores", total=1)
    try:
        scored = score_fraud(cfg, lake, run_date)
    except NoServingModel as exc:
        progress.update(task, completed=1, description="fraud scores: none written")
        console.print(f"[yellow]no fraud scores for {run_date}: {exc}[/yellow]")
        return
    decided = ", ".join(f"{n:,} {d}" for d, n in scored.decisions.items())
    progress.update(task, completed=1, description=f"fraud scores: {scored.rows:,} payments of {run_date - dt.timedelta(days=1)} ({decided})")


def _text_models(cfg: Config, lake, run_date: dt.date, progress, task: str) -> None:
    """Fine-tune, compare and register the support or categorization models; score the catalogue's categories.

    A lake without the task's text table for the run date skips the step; labels too
    few to train on get a warning instead of a failed night (and the catalogue is
    scored with the model registered earlier, if there is one).
    """
    from shoplake.ray_runtime import init_ray
    from shoplake.registry import NoServingModel
    from shoplake.schemas.text import PRODUCT_TEXT, SUPPORT_TRAINING
    from shoplake.training.text import TooFewTextsError, run_categorization, run_support

    support = task == "support"
    spec, run = (SUPPORT_TRAINING, run_support) if support else (PRODUCT_TEXT, run_categorization)
    if run_date not in lake.run_dates(spec):
        console.print(f"{task} step skipped: no {spec.full_name} for {run_date}")
        return
    init_ray(cfg)
    steps = 2 * len((cfg.support if support else cfg.categorization).models) + 5
    bar = progress.add_task(f"{task} models", total=steps)
    try:
        result = run(cfg, lake, run_date, on_step=lambda text: progress.update(bar, advance=1, description=f"{task} models: {text}"))
    except TooFewTextsError as exc:
        progress.update(bar, completed=steps, description=f"{task} models: not trained")
        console.print(f"[yellow]{task} models not trained for {run_date}: {exc}[/yellow]")
    else:
        progress.update(bar, completed=steps, description=f"{task} models: champion {result.champion} v{result.model_version} registered")
    if support:
        return
    from shoplake.scoring.categories import score_categories

    bar = progress.add_task("scoring serving.product_categories", total=1)
    try:
        scored = score_categories(cfg, lake, run_date)
    except NoServingModel as exc:
        progress.update(bar, completed=1, description="product categories: none written")
        console.print(f"[yellow]no product categories for {run_date}: {exc}[/yellow]")
        return
    progress.update(bar, completed=1, description=f"product categories: {scored.rows:,} products, {scored.flagged:,} flagged")


def _metrics_of(cfg: Config, lake, run_date: dt.date | None = None) -> list:
    """The rich tables of ``ops.model_metrics`` for a run date (default the latest), one per task that has rows."""
    from shoplake.reports import forecast_metrics_table, fraud_metrics_table, metrics_table, text_metrics_table
    from shoplake.schemas import columns as C
    from shoplake.schemas.ops import (
        MODEL_METRICS, TASK_CATEGORIZATION, TASK_FORECASTING, TASK_FRAUD, TASK_RECOMMENDATION, TASK_SUPPORT,
    )  # fmt: skip
    from shoplake.training.model_metrics import read_model_metrics

    if lake.version(MODEL_METRICS) is None:
        raise SystemExit(f"error: no {MODEL_METRICS.full_name} in {lake.root}; run a train-* command first")
    dates = lake.run_dates(MODEL_METRICS)
    run_date = run_date or (dates[-1] if dates else None)
    if run_date not in dates:
        raise SystemExit(f"error: {MODEL_METRICS.full_name} has no run date {run_date} (has: {', '.join(map(str, dates)) or 'none'})")
    rows = read_model_metrics(lake, run_date)
    tables = []
    for task, render, main in (
        (TASK_RECOMMENDATION, metrics_table, cfg.recommender.main_model),
        (TASK_FORECASTING, forecast_metrics_table, cfg.forecasting.main_model),
        (TASK_FRAUD, lambda records, _: fraud_metrics_table(records), None),
        (TASK_SUPPORT, text_metrics_table, TASK_SUPPORT),
        (TASK_CATEGORIZATION, text_metrics_table, TASK_CATEGORIZATION),
    ):
        mine = [r for r in rows.to_pylist() if r[C.TASK] == task]
        if mine:
            tables.append(render(mine, main))
    return tables


def cmd_metrics(cfg: Config, args: argparse.Namespace) -> int:
    from shoplake.lake import Lake

    console.print(*_metrics_of(cfg, Lake(cfg), args.run_date))
    return 0


def cmd_nightly(cfg: Config, args: argparse.Namespace) -> int:
    run_nightly(
        cfg, run_dates(args), args.sources, recommend=not args.no_recommend, forecast=not args.no_forecast, fraud=not args.no_fraud,
        support=not args.no_support, categorize=not args.no_categorize,
    )
    console.print(lake_table(cfg))
    return 0


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    landing = Path(cfg.landing.root)
    if args.fresh or not (landing / "_ground_truth.json").is_file():
        cmd_generate(cfg, argparse.Namespace(days=None, users=None, items=None, seed=None, start=None, out=None))
    start = dt.date.fromisoformat(cfg.generate.start)
    days = [start + dt.timedelta(days=i) for i in range(cfg.generate.days)]
    run_nightly(cfg, days)
    console.print(lake_table(cfg))
    return 0


def cmd_lake(cfg: Config, args: argparse.Namespace) -> int:
    from shoplake.lake import Lake
    from shoplake.lake.catalog import all_specs, get_spec

    if args.lake_command == "show":
        console.print(lake_table(cfg))
    elif args.lake_command == "history":
        out = Table(title=f"history of {args.table}")
        for col in ("version", "time (UTC)", "operation", "mode", "rows"):
            out.add_column(col)
        for entry in Lake(cfg).history(args.table, args.limit):
            when = dt.datetime.fromtimestamp(entry["timestamp"] / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            out.add_row(str(entry["version"]), when, entry.get("operation", ""), entry.get("shoplake.mode", ""), entry.get("shoplake.rows", ""))
        console.print(out)
    else:
        specs = [get_spec(args.table)] if args.table else all_specs()
        for spec in specs:
            out = Table(title=f"{spec.full_name}: {spec.description}", title_justify="left")
            for col in ("column", "type", "nullable", "meaning"):
                out.add_column(col)
            for c in spec.columns:
                out.add_row(c.name, c.dtype, "yes" if c.nullable else "no", c.doc)
            console.print(out)
            console.print(f"keys: {', '.join(spec.keys) or '-'}   partitioned by: {', '.join(spec.partition_by) or '-'}\n")
    return 0


def models_table(cfg: Config) -> Table:
    """A table of the registered recommender versions: kind, run date, aliases, key metric."""
    from shoplake.registry import KEY_METRIC, list_versions, tracking_uri

    out = Table(title=f"{cfg.recommender.registered_model} in {tracking_uri(cfg)}")
    for col in ("version", "model", "run date", "aliases", KEY_METRIC, "registered (UTC)", "run id"):
        out.add_column(col, justify="right" if col in ("version", KEY_METRIC) else "left")
    for v in list_versions(cfg):
        metric = "" if v.key_metric is None else f"{v.key_metric:.4f}"
        when = v.created_at.strftime("%Y-%m-%d %H:%M:%S") if v.created_at else ""
        out.add_row(v.version, v.kind or "", v.run_date or "", ", ".join(v.aliases), metric, when, v.run_id[:12])
    return out


def cmd_models(cfg: Config, args: argparse.Namespace) -> int:
    try:
        table = models_table(cfg)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    console.print(table if table.row_count else f"no recommender registered as {cfg.recommender.registered_model!r}")
    return 0


def cluster_table(state) -> Table:
    """A table of the recorded cluster processes: pid, state, ports, log file."""
    from shoplake.cluster import RAY_NODE_PORTS

    out = Table(title=f"local clusters in {state.run_dir} (started {state.started_at})")
    for col in ("process", "pid", "state", "ports", "log (in the run dir)"):
        out.add_column(col, justify="right" if col == "pid" else "left", overflow="fold")
    for p in state.processes:
        # Ray's agent ports are picked free at start; the node manager's is enough to tell nodes apart.
        ports = {k: v for k, v in p.ports.items() if k not in RAY_NODE_PORTS or k == "node_manager"}
        alive = "[green]running[/green]" if p.alive else "[red]stopped[/red]"
        log_file = Path(p.log)
        shown = log_file.relative_to(state.run_dir) if log_file.is_relative_to(state.run_dir) else log_file
        out.add_row(p.name, str(p.pid), alive, ", ".join(f"{k} {v}" for k, v in ports.items()), str(shown))
    return out


def _cluster_addresses(cfg: Config, state) -> Table:
    out = Table(show_header=False, box=None)
    out.add_column(style="bold")
    out.add_column()
    if state.spark_master_url:
        out.add_row("Spark master", state.spark_master_url)
        out.add_row("Spark master UI", state.spark_master_ui)
    if state.ray_dashboard_url:
        out.add_row("Ray dashboard", state.ray_dashboard_url)
        out.add_row("Ray GCS", state.ray_address)
        out.add_row("Ray client", state.ray_client_url)
        out.add_row("Ray Serve HTTP", f"http://{cfg.cluster.host}:{cfg.cluster.serve_http_port}")
        out.add_row("Ray token", f"export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={state.ray_auth_token_path}")
    return out


def cmd_cluster(cfg: Config, args: argparse.Namespace) -> int:
    from shoplake import cluster

    try:
        if args.cluster_command == "up":
            only = args.only
            with console.status(f"starting {only or 'Spark and Ray'} clusters on {cfg.cluster.host} (logs in {cfg.cluster.run_dir}/logs)"):
                state = cluster.up(cfg, spark=only != "ray", ray=only != "spark", timeout=args.timeout)
            console.print(cluster_table(state))
            console.print(_cluster_addresses(cfg, state))
        elif args.cluster_command == "down":
            with console.status(f"stopping the clusters recorded in {cfg.cluster.run_dir}"):
                outcome = cluster.down(cfg, grace=args.grace)
            if not outcome:
                console.print(f"no cluster recorded in {cfg.cluster.run_dir}")
            else:
                out = Table(title="stopped")
                out.add_column("process")
                out.add_column("outcome")
                for name, what in outcome.items():
                    out.add_row(name, what)
                console.print(out)
        else:
            state = cluster.status(cfg)
            if state is None:
                console.print(f"no cluster recorded in {cfg.cluster.run_dir}")
                return 0
            console.print(cluster_table(state))
            console.print(_cluster_addresses(cfg, state))
    except cluster.ClusterError as exc:
        raise SystemExit(f"error: {exc}") from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoplake", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = add_config_args(sub.add_parser("generate", help="write a synthetic shop's landing files"))
    p.add_argument("--days", type=int)
    p.add_argument("--users", type=int)
    p.add_argument("--items", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--start", type=parse_date)
    p.add_argument("--out", help="landing folder (default: landing.root)")

    p = add_config_args(sub.add_parser("import", help="turn a public dataset into landing files"))
    p.add_argument("dataset", choices=["online-retail", "bitext", "pricerunner"])
    p.add_argument("src", help="the dataset's folder or file under ../shared/data")
    p.add_argument("--out", help="landing folder (default: landing.root)")

    sub.add_parser("ingest", help="landing -> bronze (same as spark-submit jobs/ingest.py)", add_help=False)
    sub.add_parser("features", help="bronze -> silver/gold features (same as spark-submit jobs/build_features.py)", add_help=False)
    sub.add_parser(
        "train-recommender", help="train, evaluate and register the recommenders (same as ray_apps/train_recommender.py)", add_help=False
    )
    sub.add_parser(
        "train-forecaster", help="backtest, train and register the demand forecasters (ray_apps/train_forecaster.py)", add_help=False
    )
    sub.add_parser(
        "score-forecasts", help="forecasts and the replenishment plan into the serving tables (ray_apps/score_forecasts.py)", add_help=False
    )
    sub.add_parser(
        "train-fraud", help="train, compare and register the fraud models (ray_apps/train_fraud.py)", add_help=False
    )
    sub.add_parser(
        "score-fraud", help="fraud scores of the last day's payments into serving.fraud_scores (ray_apps/score_fraud.py)", add_help=False
    )
    sub.add_parser(
        "train-text", help="fine-tune, compare and register the support or category models (ray_apps/train_text.py --task ...)",
        add_help=False,
    )  # fmt: skip
    sub.add_parser(
        "score-categories", help="every product's predicted category into serving.product_categories (ray_apps/score_categories.py)",
        add_help=False,
    )  # fmt: skip
    sub.add_parser("profile-tables", help="rows and nulls per column into ops.table_profiles (ray_apps/profile_tables.py)", add_help=False)
    sub.add_parser(
        "score-recommendations", help="top-k of every user into serving.recommendations (ray_apps/score_recommendations.py)", add_help=False
    )

    p = add_config_args(add_date_args(sub.add_parser("nightly", help="run the nightly flow for a day or a range")))
    p.add_argument("--source", dest="sources", action="append", help="only this landing source (repeatable)")
    p.add_argument("--no-recommend", action="store_true", help="no recommender training or scoring")
    p.add_argument("--no-forecast", action="store_true", help="no forecaster training, forecasts or replenishment plan")
    p.add_argument("--no-fraud", action="store_true", help="no fraud model training or fraud scores")
    p.add_argument("--no-support", action="store_true", help="no support intent model training")
    p.add_argument("--no-categorize", action="store_true", help="no product category model training or category scores")

    p = add_config_args(sub.add_parser("demo", help="generate a small shop and run the nightly flow over it"))
    p.add_argument("--fresh", action="store_true", help="regenerate the landing files even if present")

    p = add_config_args(sub.add_parser("metrics", help="the recommenders', forecasters' and fraud models' metrics from ops.model_metrics"))
    p.add_argument("--run-date", type=parse_date, help="run date (default: the latest)")

    p = sub.add_parser("lake", help="look at the lake")
    lake_sub = p.add_subparsers(dest="lake_command", required=True)
    add_config_args(lake_sub.add_parser("show", help="tables with version and rows"))
    h = add_config_args(lake_sub.add_parser("history", help="commits of a table"))
    h.add_argument("table")
    h.add_argument("--limit", type=int, default=20)
    d = add_config_args(lake_sub.add_parser("describe", help="columns of one table or all"))
    d.add_argument("table", nargs="?")

    add_config_args(sub.add_parser("models", help="registered recommender versions with their aliases and key metric"))

    p = sub.add_parser("cluster", help="local Spark standalone and Ray clusters on 127.0.0.1")
    cluster_sub = p.add_subparsers(dest="cluster_command", required=True)
    u = add_config_args(cluster_sub.add_parser("up", help="start them (settings: cluster.* in conf/base.yaml)"))
    u.add_argument("--only", choices=["spark", "ray"], help="start only this cluster")
    u.add_argument("--timeout", type=float, default=180.0, help="seconds to wait until they are ready")
    c = add_config_args(cluster_sub.add_parser("down", help="stop what `cluster up` started"))
    c.add_argument("--grace", type=float, default=20.0, help="seconds after SIGTERM before SIGKILL")
    add_config_args(cluster_sub.add_parser("status", help="recorded processes, whether they run, addresses"))
    return parser


COMMANDS = {
    "generate": cmd_generate,
    "import": cmd_import,
    "nightly": cmd_nightly,
    "demo": cmd_demo,
    "lake": cmd_lake,
    "metrics": cmd_metrics,
    "cluster": cmd_cluster,
    "models": cmd_models,
}
ENTRY_POINTS = {
    "ingest": "jobs/ingest.py",
    "features": "jobs/build_features.py",
    "train-recommender": "ray_apps/train_recommender.py",
    "profile-tables": "ray_apps/profile_tables.py",
    "score-recommendations": "ray_apps/score_recommendations.py",
    "train-forecaster": "ray_apps/train_forecaster.py",
    "score-forecasts": "ray_apps/score_forecasts.py",
    "train-fraud": "ray_apps/train_fraud.py",
    "score-fraud": "ray_apps/score_fraud.py",
    "train-text": "ray_apps/train_text.py",
    "score-categories": "ray_apps/score_categories.py",
}


def run(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ENTRY_POINTS:
        return load_entry_point(ENTRY_POINTS[argv[0]]).main(argv[1:])
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    return COMMANDS[args.command](cfg, args)


def main() -> None:
    """Console-script entry point."""
    exit_cleanly(run)
