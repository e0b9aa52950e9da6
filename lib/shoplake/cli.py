"""``shoplake``: the command line of the platform.

Step commands (``ingest``, ``features``, ``train-fraud``, ...: every step of
:mod:`shoplake.pipeline`) run the step's own ``main()``, the one ``spark-submit jobs/...``
and ``ray job submit ... ray_apps/...`` run too; ``nightly`` runs the declared steps for one
day or a range (or prints their cluster commands), and ``demo`` builds a small synthetic
shop and runs the nightly flow over it; ``serve`` runs the HTTP application until
stopped. ``cluster up|down|status`` runs local Spark
standalone and Ray clusters to test jobs the way they run on real ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from shoplake.config import Config
from shoplake.entry import add_config_args, add_date_args, config_from_args, exit_cleanly, parse_date, run_dates
from shoplake.ingest.commands import add_allow_shrink_arg

log = logging.getLogger(__name__)
console = Console()


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def lake_table(cfg: Config) -> Table:
    """A table of the lake: every existing table with version, rows and quarantined rows."""
    from shoplake.ingest.bronze import QUARANTINE
    from shoplake.lake import Lake

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


def _generic_import(args: argparse.Namespace, out: str) -> dict:
    from shoplake.datagen.generic import import_interactions, import_sales

    need = ("user", "item", "timestamp") if args.dataset == "interactions" else ("series", "date", "value")
    missing = [f"--{n.replace('_', '-')}" for n in need if not getattr(args, n)]
    if missing:
        raise SystemExit(f"error: import {args.dataset} needs {', '.join(missing)}")
    if args.dataset == "interactions":
        return import_interactions(args.src, out, user=args.user, item=args.item, timestamp=args.timestamp, value=args.value,
                                   item_text=args.item_text, min_value=args.min_value, event_type=args.event_type)  # fmt: skip
    return import_sales(args.src, out, series=args.series, date=args.date, value=args.value, price=args.price,
                        value_kind=args.value_kind)  # fmt: skip


def cmd_import(cfg: Config, args: argparse.Namespace) -> int:
    out = args.out or cfg.landing.root
    if args.dataset in ("interactions", "sales"):
        from shoplake.errors import InputError

        try:
            report = _generic_import(args, out)
        except InputError as exc:
            raise SystemExit(f"error: {exc}") from None
        console.print_json(json.dumps(report, default=str))
        return 0
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


def _metrics_of(cfg: Config, lake, run_date: dt.date | None = None) -> list:
    """The rich tables of ``ops.model_metrics`` for a run date (default the latest), one per use case that has rows."""
    from shoplake import columns as C
    from shoplake.train.model_metrics import MODEL_METRICS, read_model_metrics
    from shoplake.usecases import use_cases

    if lake.version(MODEL_METRICS) is None:
        raise SystemExit(f"error: no {MODEL_METRICS.full_name} in {lake.root}; run a train-* command first")
    dates = lake.run_dates(MODEL_METRICS)
    run_date = run_date or (dates[-1] if dates else None)
    if run_date not in dates:
        raise SystemExit(f"error: {MODEL_METRICS.full_name} has no run date {run_date} (has: {', '.join(map(str, dates)) or 'none'})")
    rows = read_model_metrics(lake, run_date).to_pylist()
    tables = []
    for uc in use_cases():
        mine = [r for r in rows if r[C.TASK] == uc.metrics_task]
        if mine and uc.metrics_table is not None:
            tables.append(uc.metrics_table(mine, cfg))
    return tables


def cmd_metrics(cfg: Config, args: argparse.Namespace) -> int:
    from shoplake.lake import Lake

    console.print(*_metrics_of(cfg, Lake(cfg), args.run_date))
    return 0


def _print_metrics(cfg: Config, run_date: dt.date) -> None:
    from shoplake.lake import Lake
    from shoplake.train.model_metrics import MODEL_METRICS

    lake = Lake(cfg)
    if run_date in lake.run_dates(MODEL_METRICS):
        console.print(*_metrics_of(cfg, lake, run_date))


def _nightly(cfg: Config, days: list[dt.date], sources: list[str] | None = None, skip: set[str] = frozenset()) -> None:
    from shoplake.pipeline import run_nightly, step_date, steps

    with _progress() as progress:
        ran = run_nightly(cfg, days, sources, skip=skip, progress=progress, console=console)
    use_case_steps = [s for s in steps() if s.use_case]
    if any(s.name in ran for s in use_case_steps):
        _print_metrics(cfg, step_date(use_case_steps[-1], days[-1]))


def cmd_nightly(cfg: Config, args: argparse.Namespace) -> int:
    from shoplake.usecases import use_cases

    skip = {uc.name for uc in use_cases() if getattr(args, f"no_{uc.name}")}
    if args.print_commands:
        from shoplake.pipeline import cluster_commands

        days = run_dates(args)
        for day in days:
            for line in cluster_commands(day, args.cluster_env, skip):
                print(line)
        return 0
    _nightly(cfg, run_dates(args), args.sources, skip)
    console.print(lake_table(cfg))
    return 0


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    landing = Path(cfg.landing.root)
    if args.fresh or not (landing / "_ground_truth.json").is_file():
        cmd_generate(cfg, argparse.Namespace(days=None, users=None, items=None, seed=None, start=None, out=None))
    start = dt.date.fromisoformat(cfg.generate.start)
    _nightly(cfg, [start + dt.timedelta(days=i) for i in range(cfg.generate.days)])
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
            out.add_row(
                str(entry["version"]), when, entry.get("operation", ""), entry.get("shoplake.mode", ""), entry.get("shoplake.rows", "")
            )
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


def models_table(cfg: Config, registered_model: str) -> Table:
    """A table of one registered model's versions: kind, run date, aliases, key metric."""
    from shoplake.registry import KEY_METRIC, list_versions, tracking_uri

    out = Table(title=f"{registered_model} in {tracking_uri(cfg)}")
    for col in ("version", "model", "run date", "aliases", KEY_METRIC, "registered (UTC)", "run id"):
        out.add_column(col, justify="right" if col in ("version", KEY_METRIC) else "left")
    for v in list_versions(cfg, registered_model):
        metric = "" if v.key_metric is None else f"{v.key_metric:.4f}"
        when = v.created_at.strftime("%Y-%m-%d %H:%M:%S") if v.created_at else ""
        out.add_row(v.version, v.kind or "", v.run_date or "", ", ".join(v.aliases), metric, when, v.run_id[:12])
    return out


def cmd_models(cfg: Config, args: argparse.Namespace) -> int:
    from shoplake.usecases import use_cases

    chosen = [uc for uc in use_cases() if uc.config_section and (args.use_case is None or uc.name == args.use_case)]
    for uc in chosen:
        name = uc.registered_model(cfg)
        try:
            table = models_table(cfg, name)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
        console.print(table if table.row_count else f"{uc.name}: no model registered as {name!r}")
    return 0


def cmd_serve(cfg: Config, args: argparse.Namespace) -> int:
    from shoplake.serve.app import serve_forever

    serve_forever(cfg, args.overrides)
    return 0


def cmd_cluster(cfg: Config, args: argparse.Namespace) -> int:
    from shoplake.cluster.report import run_cluster_command

    return run_cluster_command(cfg, args, console)


def build_parser() -> argparse.ArgumentParser:
    from shoplake.pipeline import steps
    from shoplake.usecases import use_cases

    parser = argparse.ArgumentParser(prog="shoplake", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = add_config_args(sub.add_parser("generate", help="write a synthetic shop's landing files"))
    p.add_argument("--days", type=int)
    p.add_argument("--users", type=int)
    p.add_argument("--items", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--start", type=parse_date)
    p.add_argument("--out", help="landing folder (default: landing.root)")

    p = add_config_args(sub.add_parser("import", help="turn a public dataset, or a shop's own interactions or sales, into landing files"))
    p.add_argument("dataset", choices=["online-retail", "bitext", "pricerunner", "interactions", "sales"])
    p.add_argument("src", help="the dataset's folder or file under ../shared/data; a CSV or Parquet file for interactions and sales")
    p.add_argument("--out", help="landing folder (default: landing.root)")
    generic = p.add_argument_group("interactions and sales: the columns of the file")
    for flag, text in (("--user", "user"), ("--item", "item"), ("--timestamp", "time of the interaction"),
                       ("--value", "rating or count (interactions), units sold (sales)"), ("--item-text", "item text"),
                       ("--series", "series (item) of a sales row"), ("--date", "day of a sales row"), ("--price", "unit price")):  # fmt: skip
        generic.add_argument(flag, help=f"column: {text}")
    generic.add_argument("--min-value", type=float, help="interactions: keep rows with value at least this (ratings as purchases)")
    generic.add_argument("--event-type", default="purchase", help="interactions: the event each row becomes (default purchase)")
    generic.add_argument("--value-kind", choices=["units", "amount"], default="units",
                         help="sales: whole units (default), or any amount such as revenue or weight (forecast with forecasting.target=revenue)")  # fmt: skip

    for step in steps():
        sub.add_parser(step.name, help=step.help, add_help=False)

    p = add_allow_shrink_arg(add_config_args(add_date_args(sub.add_parser("nightly", help="run the nightly flow for a day or a range"))))
    p.add_argument("--source", dest="sources", action="append", help="only this landing source (repeatable)")
    for uc in use_cases():
        p.add_argument(f"--no-{uc.name}", action="store_true", help=f"leave out the steps of {uc.name}")
    p.add_argument(
        "--print-commands", action="store_true", help="print the spark-submit / ray job submit lines of a cluster run instead of running"
    )
    p.add_argument("--cluster-env", default="cluster", help="the --env of the printed commands (default: cluster)")

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

    p = add_config_args(sub.add_parser("models", help="registered model versions of every use case, with their aliases and key metric"))
    p.add_argument("--use-case", choices=[uc.name for uc in use_cases() if uc.config_section], help="only this use case's model")

    add_config_args(sub.add_parser("serve", help="serve the HTTP application on serve.host:serve.port until Ctrl-C"))

    p = sub.add_parser("cluster", help="local Spark standalone and Ray clusters on 127.0.0.1")
    cluster_sub = p.add_subparsers(dest="cluster_command", required=True)
    u = add_config_args(cluster_sub.add_parser("up", help="start them (settings: cluster.* of the configuration)"))
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
    "serve": cmd_serve,
}


def run(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit code."""
    from shoplake.pipeline import steps

    argv = list(sys.argv[1:] if argv is None else argv)
    step = next((s for s in steps() if argv and s.name == argv[0]), None)
    if step is not None:
        return step.load_main()(argv[1:])
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    return COMMANDS[args.command](cfg, args)


def main() -> None:
    """Console-script entry point."""
    exit_cleanly(run)
