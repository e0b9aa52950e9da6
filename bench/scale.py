"""Benchmark: the nightly steps on synthetic shops 1x, 10x and 100x the demo's size, night after night.

For each scale N it generates a synthetic shop with N times the configured
``generate.users`` and ``generate.items`` over ``--days`` + ``--nights`` days
(:func:`shoplake.datagen.synthetic.generate_shop`), starts from an empty lake and runs
the nightly steps on it (:func:`shoplake.pipeline.run_nightly`; ``ingest`` and
``features`` unless ``--steps`` names others):

* the **backfill**: one nightly run over the first ``--days`` landing days, as
  ``shoplake nightly --from D1 --to Dn`` runs it (ingest loads every day, the later
  steps run for the morning after the last);
* then ``--nights`` **further nights**, one landing day each, as the schedule runs them.

Each step of each night runs on its own (``run_nightly(only={step})``, in the
pipeline's order) and is measured:

* wall seconds;
* peak memory, sampled every quarter second (:class:`MemorySampler`): the resident
  set of the Python driver and of the Spark JVM it started, the JVM's heap in use,
  and all the processes together (driver, JVM, Python workers);
* rows read: the input records of the Spark stages the step ran (data files, and the
  Delta logs delta-spark reads, as the Spark UI counts them), from the driver's status store;
* rows written: the rows of the Delta commits the step made (each table's history,
  ``shoplake.rows``), per table.

After every night it walks each table's folder and records its bytes on disk: the
Delta log and every data file, those of replaced partitions too until maintenance
vacuums them (``maintain-lake``, not run unless ``--steps`` names it).

It prints a table per scale, then one row per scale for a further night (median
seconds, peak memory, how many bytes silver + gold and bronze grow per night), and
at the largest scale a further night's ingest + features seconds against the same
night at 10x (or the next smaller scale run). The Spark session starts before the
first step and is not counted in any step. With several scales each runs in its
own process (this script with ``--scales N``), one after the other, so that one
scale's memory does not carry into the next; each leaves its figures in
``<out>/<N>x/scale.json``.

Run::

    .venv/bin/python bench/scale.py --scales 1,10,100 --nights 10 --json runs/scale/scale.json --chart runs/scale/scale.png
    .venv/bin/python bench/scale.py --scales 1 --days 20 --nights 2 --out /tmp/scale-smoke
    .venv/bin/python bench/scale.py --scales 10 --keep --steps ingest,features,maintain-lake

``--out`` (default ``data/scale``, relative to the project root) holds
``<N>x/landing`` and ``<N>x/lake`` per scale; the lake is deleted and rebuilt on
every run, the landing files are generated again unless ``--keep`` finds them
generated with the same parameters.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scale_measure import MemorySampler, SparkStages, folder_bytes, layer_bytes, rows_written, table_bytes, table_versions
from scale_report import COMPARED_STEPS, days_label, draw_chart, machine, night_label, report, scale_table
from shoplake.entry import add_config_args, config_from_args, exit_cleanly

log = logging.getLogger("bench.scale")

#: Each scale's figures, in its own folder under ``--out``.
SCALE_JSON = "scale.json"
MB = 1e6


def parse_scales(value: str) -> list[int]:
    try:
        scales = [int(s.strip()) for s in value.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"scales must be comma-separated integers: {value!r}") from None
    if not scales or any(n <= 0 for n in scales):
        raise argparse.ArgumentTypeError(f"scales must be positive integers: {value!r}")
    return sorted(set(scales))


def parse_names(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.set_defaults(log_level="WARNING")
    parser.add_argument(
        "--scales", type=parse_scales, default=parse_scales("1,10,100"), help="multiples of generate.users and generate.items"
    )
    parser.add_argument("--days", type=int, default=None, help="landing days of the backfill (default: generate.days)")
    parser.add_argument("--nights", type=int, default=10, help="further nights after the backfill, one landing day each")
    parser.add_argument("--steps", type=parse_names, default=list(COMPARED_STEPS), help="nightly steps to run, comma-separated")
    parser.add_argument("--out", default="data/scale", help="folder of each scale's landing files and lake (relative: to the project root)")
    parser.add_argument("--keep", action="store_true", help="reuse landing files generated earlier with the same parameters")
    parser.add_argument("--json", default=None, help="write every figure to this JSON file")
    parser.add_argument("--chart", default=None, help="draw per-night seconds and lake bytes to this PNG (and an SVG beside it)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser


# ---------------------------------------------------------------- measuring


def scale_config(args: argparse.Namespace, n: int):
    from shoplake.config import load_config

    base = scale_folder(args, n)
    return load_config(args.env, [f"landing.root={base / 'landing'}", f"lake.root={base / 'lake'}", *args.overrides])


def scale_folder(args: argparse.Namespace, n: int) -> Path:
    return args.out_path / f"{n}x"


def shop_params(cfg, n: int, days: int, nights: int):
    from shoplake.datagen.synthetic import ShopParams

    g = cfg.generate
    return ShopParams(
        days=days + nights,
        users=g.users * n,
        items=g.items * n,
        seed=g.seed,
        start=dt.date.fromisoformat(g.start),
        fraud_rate=g.fraud_rate,
        tickets_per_order=g.tickets_per_order,
    )


def ensure_landing(landing: Path, params, keep: bool, console) -> dict:
    """Generate the shop's landing files (or, with ``keep``, reuse ones of the same parameters); what it took."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from shoplake.datagen.shop.common import GROUND_TRUTH_FILE
    from shoplake.datagen.synthetic import generate_shop

    truth_file = landing / GROUND_TRUTH_FILE
    if keep and truth_file.is_file():
        truth = json.loads(truth_file.read_text(encoding="utf-8"))
        if truth.get("params") == params.to_json():
            console.print(f"reusing the landing files in {landing}")
            return {"seconds": None, "reused": True, "rows": truth["summary"]["rows"], "bytes": folder_bytes(str(landing))[0]}
        console.print(f"[yellow]{landing} was generated with other parameters: generating it again[/yellow]")
    shutil.rmtree(landing, ignore_errors=True)
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    )
    start = time.perf_counter()
    with bar:
        task = bar.add_task(
            f"generating {params.users:,} users, {params.items:,} items, {params.days} days into {landing}", total=params.days
        )
        summary = generate_shop(landing, params, progress=lambda done, total: bar.update(task, completed=done))
    seconds = time.perf_counter() - start
    console.print(f"generated {sum(summary['rows'].values()):,} landing rows in {seconds:.1f} s")
    return {"seconds": seconds, "reused": False, "rows": summary["rows"], "bytes": folder_bytes(str(landing))[0]}


def measure_step(cfg, lake, step: str, days: list[dt.date], memory: MemorySampler, stages: SparkStages | None, progress, console) -> dict:
    """Run one step of the nightly flow for ``days`` and measure it."""
    from shoplake.pipeline import run_nightly

    before = table_versions(lake)
    if stages is not None:
        stages.mark()
    memory.reset()
    start = time.perf_counter()
    ran = run_nightly(cfg, days, only={step}, progress=progress, console=console)
    seconds = time.perf_counter() - start
    peak = memory.peak()
    read = stages.since_mark() if stages is not None else None
    written = rows_written(lake, before)
    return {
        "step": step,
        "ran": step in ran,
        "seconds": seconds,
        "peak_memory": peak,
        "rows_read": None if read is None else read["records"],
        "spark_stages": None if read is None else read["stages"],
        "rows_read_complete": None if read is None else read["complete"],
        "rows_written": sum(written.values()),
        "tables_written": written,
        "load_average": list(os.getloadavg()),
    }


def run_scale(args: argparse.Namespace, n: int, days: int, memory: MemorySampler, console) -> dict:
    """Generate the shop of scale ``n``, run the backfill and the further nights, and measure each step."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from shoplake.entry import date_range
    from shoplake.lake import Lake
    from shoplake.spark import get_spark

    cfg = scale_config(args, n)
    params = shop_params(cfg, n, days, args.nights)
    landing = ensure_landing(Path(cfg.landing.root), params, args.keep, console)
    shutil.rmtree(cfg.lake.root, ignore_errors=True)

    start = time.perf_counter()
    spark = get_spark(cfg)
    spark_start = time.perf_counter() - start
    memory.watch_jvm(spark)
    lake = Lake(cfg, spark)
    engine = lake.engine.name
    try:
        stages = SparkStages(spark)
        stages.mark()
    except Exception as exc:  # noqa: BLE001 - a session without a reachable JVM status store (Spark Connect): no rows read
        log.warning("Spark's status store cannot be read (%s): rows read are left out", exc)
        stages = None

    landed = date_range(params.start, params.start + dt.timedelta(days=params.days - 1))
    nights = [(0, landed[:days])] + [(k, [landed[days + k - 1]]) for k in range(1, args.nights + 1)]
    result = {
        "scale": n,
        "users": params.users,
        "items": params.items,
        "backfill_days": days,
        "landing": {"folder": cfg.landing.root, **landing},
        "lake": cfg.lake.root,
        "engine": engine,
        "spark": {"version": spark.version, "master": spark.sparkContext.master, "start_seconds": spark_start},
        "nights": [],
    }
    progress = Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), console=console, transient=True
    )
    with progress:
        for night, days_of_night in nights:
            steps = [measure_step(cfg, lake, step, days_of_night, memory, stages, progress, console) for step in args.steps]
            tables = table_bytes(lake)
            record = {
                "night": night,
                "landing_days": [days_of_night[0].isoformat(), days_of_night[-1].isoformat()],
                "seconds": sum(s["seconds"] for s in steps),
                "steps": steps,
                "bytes": tables,
                "layer_bytes": layer_bytes(tables),
                "lake_bytes": sum(tables.values()),
            }
            result["nights"].append(record)
            times = ", ".join(f"{s['step']} {s['seconds']:.1f} s" for s in steps)
            progress.console.print(f"{n}x {night_label(night)} ({days_label(record)}): {times}; lake {record['lake_bytes'] / MB:,.1f} MB")
    return result


# ---------------------------------------------------------------- reporting


def child_argv(args: argparse.Namespace, n: int, days: int) -> list[str]:
    """This script's arguments for running scale ``n`` on its own."""
    argv = ["--scales", str(n), "--days", str(days), "--nights", str(args.nights), "--steps", ",".join(args.steps)]
    argv += ["--out", str(args.out_path), "--env", args.env, "--log-level", args.log_level, "--child"]
    argv += [a for o in args.overrides for a in ("--set", o)]
    return argv + (["--keep"] if args.keep else [])


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from shoplake.pipeline import steps as declared_steps

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    for key in ("landing.root", "lake.root"):
        if any(o.split("=", 1)[0].strip() == key for o in args.overrides):
            raise SystemExit(f"{key} comes from --out: each scale's folder under it is deleted and rebuilt")
    known = [s.name for s in declared_steps()]
    unknown = [s for s in args.steps if s not in known]
    if unknown:
        raise SystemExit(f"unknown step(s) {', '.join(unknown)}; steps: {', '.join(known)}")
    if "ingest" not in args.steps:
        raise SystemExit("--steps must include ingest: the nights land their days through it")
    args.steps = [s for s in known if s in args.steps]
    days = args.days or cfg.generate.days
    if days < 1 or args.nights < 0:
        raise SystemExit("--days must be at least 1 and --nights at least 0")
    out = Path(args.out).expanduser()
    args.out_path = out if out.is_absolute() else Path(cfg.project_root) / out

    console = Console(file=sys.stdout, width=220)
    results, failed = [], []
    if len(args.scales) == 1:
        memory = MemorySampler()
        memory.start()
        try:
            results.append(run_scale(args, args.scales[0], days, memory, console))
        finally:
            memory.stop()
        console.print(scale_table(results[0]))
        path = scale_folder(args, args.scales[0]) / SCALE_JSON
        path.write_text(json.dumps(results[0], indent=1) + "\n", encoding="utf-8")
        if args.child:
            return 0
    else:
        for n in args.scales:
            code = subprocess.run([sys.executable, __file__, *child_argv(args, n, days)], check=False).returncode
            path = scale_folder(args, n) / SCALE_JSON
            if code or not path.is_file():
                console.print(f"[red]{n}x failed (exit code {code})[/red]")
                failed.append(n)
                continue
            results.append(json.loads(path.read_text(encoding="utf-8")))
    if not results:
        return 1

    summaries, comparison = report(results, console)
    if args.json:
        document = {
            "machine": machine(),
            "settings": {"scales": args.scales, "days": days, "nights": args.nights, "steps": args.steps, "out": str(args.out_path)},
            "scales": results,
            "summaries": summaries,
            "comparison": comparison,
            "failed": failed,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        console.print(f"figures: {args.json}")
    if args.chart:
        draw_chart(results, args.chart)
        console.print(f"chart: {args.chart}")
    return 1 if failed else 0


if __name__ == "__main__":
    exit_cleanly(main)
