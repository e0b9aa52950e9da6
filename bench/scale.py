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
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from shoplake.entry import add_config_args, config_from_args, exit_cleanly

log = logging.getLogger("bench.scale")

#: Seconds between two memory samples.
SAMPLE_SECONDS = 0.25
#: The steps whose seconds the comparison between scales adds up.
COMPARED_STEPS = ("ingest", "features")
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


class MemorySampler:
    """Peak memory of this process and of the processes it started, sampled in a thread.

    ``python``: this driver's RSS; ``jvm``: the Spark JVM's RSS and ``jvm_heap`` the bytes
    of its heap in use (the RSS follows ``spark.driver.memory`` more than the data);
    ``others``: the proportional set size of every other descendant (Python workers,
    whose pages shared with the daemon they fork from count once); ``total``: their sum.
    """

    def __init__(self, interval: float = SAMPLE_SECONDS):
        import psutil

        self._psutil = psutil
        self._me = psutil.Process()
        self._interval = interval
        self._lock = threading.Lock()
        self._peak: dict[str, int] = {}
        self._jvm_pid: int | None = None
        self._heap = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def watch_jvm(self, spark) -> None:
        """Sample the JVM of ``spark``: its RSS, its heap, and which of its children to count."""
        self._jvm_pid = spark.sparkContext._gateway.proc.pid
        self._heap = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getMemoryMXBean()

    def sample(self) -> dict[str, int]:
        out = {"python": self._me.memory_info().rss, "jvm": 0, "jvm_heap": 0, "others": 0}
        for child in self._me.children(recursive=True):
            try:
                if child.pid == self._jvm_pid:
                    out["jvm"] = child.memory_info().rss
                elif child.ppid() == self._jvm_pid and not child.name().startswith("python"):
                    # What the JVM spawns besides the Python daemon (chmod, through Hadoop's shell on a machine
                    # without its native library) shows the JVM's own memory until it execs.
                    continue
                elif child.name() != "java":
                    out["others"] += child.memory_full_info().pss
            except self._psutil.Error:
                continue
        if self._heap is not None:
            try:
                out["jvm_heap"] = int(self._heap.getHeapMemoryUsage().getUsed())
            except Exception:  # noqa: BLE001 - the gateway closes when the session stops
                pass
        out["total"] = out["python"] + out["jvm"] + out["others"]
        return out

    def _add(self, sample: dict[str, int]) -> None:
        with self._lock:
            for key, value in sample.items():
                self._peak[key] = max(self._peak.get(key, 0), value)

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            self._add(self.sample())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def reset(self) -> None:
        """Start a new peak from the current usage."""
        sample = self.sample()
        with self._lock:
            self._peak = sample

    def peak(self) -> dict[str, int]:
        """The peak of each figure since :meth:`reset`."""
        self._add(self.sample())
        with self._lock:
            return dict(self._peak)


class SparkStages:
    """Input records of the Spark stages run since a mark, from the driver's status store (what the Spark UI shows)."""

    def __init__(self, spark):
        self._sc = spark.sparkContext
        self._mark = -1

    def _stages(self):
        """Every stage the store retains, newest first."""
        gateway = self._sc._gateway
        store = self._sc._jsc.sc().statusStore()
        stages = store.stageList(None, False, False, gateway.new_array(gateway.jvm.double, 0), None)
        return gateway.jvm.scala.jdk.javaapi.CollectionConverters.asJava(stages)

    def mark(self) -> None:
        newest = next(iter(self._stages()), None)
        self._mark = -1 if newest is None else int(newest.stageId())

    def since_mark(self) -> dict:
        """``records`` read by the completed stages since the mark, how many ``stages``, and whether the store held them all."""
        records, ids = 0, set()
        oldest, reached = None, False
        for stage in self._stages():
            stage_id = int(stage.stageId())
            if stage_id <= self._mark:
                reached = True
                break
            oldest = stage_id
            if stage.status().toString() == "COMPLETE":
                records += int(stage.inputRecords())
                ids.add(stage_id)
        # The store keeps the newest spark.ui.retainedStages stages: past that, the oldest of the step's are gone.
        complete = reached or oldest is None or oldest == self._mark + 1
        return {"records": records, "stages": len(ids), "complete": complete}


def table_versions(lake) -> dict[str, int | None]:
    """The newest version of every table of the catalog (None: no table)."""
    from shoplake.lake.catalog import all_specs

    return {spec.full_name: lake.current_version(spec) for spec in all_specs()}


def rows_written(lake, before: dict[str, int | None]) -> dict[str, int]:
    """Rows of the commits made since ``before`` (:func:`table_versions`), per table written (commits that count none, such as the run manifest's, left out)."""
    out = {}
    for table, version in table_versions(lake).items():
        old = before.get(table)
        if version is None or version == old:
            continue
        first = 0 if old is None else old + 1
        commits = [e for e in lake.history(table, limit=version - first + 1) if int(e["version"]) >= first]
        counted = [int(e["shoplake.rows"]) for e in commits if e.get("shoplake.rows") is not None]
        if counted:
            out[table] = sum(counted)
    return out


def folder_bytes(uri: str, storage_options=None) -> tuple[int, int]:
    """Bytes and number of the files under a folder (every file: data, logs, checkpoints)."""
    import pyarrow.fs as pafs

    from shoplake.lake.files import filesystem

    fs, root = filesystem(uri, storage_options)
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    files = [i for i in infos if i.type == pafs.FileType.File]
    return sum(i.size for i in files), len(files)


def table_bytes(lake) -> dict[str, int]:
    """Bytes on disk of every table of the catalog that has a folder."""
    from shoplake.lake.catalog import all_specs

    out = {}
    for spec in all_specs():
        size, files = folder_bytes(lake.uri(spec), lake.storage_options)
        if files:
            out[spec.full_name] = size
    return out


def layer_bytes(tables: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for table, size in tables.items():
        layer = table.split(".", 1)[0]
        out[layer] = out.get(layer, 0) + size
    return out


# ---------------------------------------------------------------- one scale


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


def night_label(night: int) -> str:
    return "backfill" if night == 0 else f"night {night}"


def days_label(record: dict) -> str:
    first, last = record["landing_days"]
    return first if first == last else f"{first}..{last}"


def peak_of(record: dict, key: str) -> int:
    return max(s["peak_memory"].get(key, 0) for s in record["steps"])


def rows_cell(value: int | None, complete: bool | None = True) -> str:
    if value is None:
        return ""
    return f"{value:,}" if complete is not False else f">={value:,}"


def scale_table(result: dict):
    """One row per night: each step's seconds, rows read and written; peak memory; bytes per layer."""
    from rich.table import Table

    steps = [s["step"] for s in result["nights"][0]["steps"]]
    table = Table(
        title=(
            f"{result['scale']}x: {result['users']:,} users, {result['items']:,} items; backfill of {result['backfill_days']} days, "
            f"then {len(result['nights']) - 1} nights ({result['engine']}, Spark {result['spark']['version']} {result['spark']['master']})"
        )
    )
    table.add_column("night", no_wrap=True)
    table.add_column("landing days", no_wrap=True)
    for step in steps:
        table.add_column(f"{step} s", justify="right")
        table.add_column(f"{step} read", justify="right")
        table.add_column(f"{step} written", justify="right")
    for label in ("python MB", "JVM MB", "heap MB", "all MB", "bronze MB", "silver MB", "gold MB", "lake MB"):
        table.add_column(label, justify="right")
    for record in result["nights"]:
        cells = [night_label(record["night"]), days_label(record)]
        for s in record["steps"]:
            cells += [
                f"{s['seconds']:.1f}" if s["ran"] else "skipped",
                rows_cell(s["rows_read"], s["rows_read_complete"]),
                rows_cell(s["rows_written"]),
            ]
        layers = record["layer_bytes"]
        cells += [f"{peak_of(record, key) / MB:,.0f}" for key in ("python", "jvm", "jvm_heap", "total")]
        cells += [f"{layers.get(layer, 0) / MB:,.1f}" for layer in ("bronze", "silver", "gold")]
        cells.append(f"{record['lake_bytes'] / MB:,.1f}")
        table.add_row(*cells)
    return table


def compared_seconds(record: dict) -> float:
    """A night's seconds of the compared steps (ingest + features), or of every step when neither ran."""
    chosen = [s["seconds"] for s in record["steps"] if s["step"] in COMPARED_STEPS]
    return sum(chosen) if chosen else record["seconds"]


def silver_gold(record: dict) -> int:
    return record["layer_bytes"].get("silver", 0) + record["layer_bytes"].get("gold", 0)


def summarize(result: dict) -> dict:
    """What a further night costs at one scale: medians over the nights, growth per night."""
    backfill, further = result["nights"][0], result["nights"][1:]
    out = {"scale": result["scale"], "backfill_seconds": backfill["seconds"], "nights": len(further)}
    if not further:
        return out
    last = further[-1]
    steps = [s["step"] for s in backfill["steps"]]
    out["night_seconds"] = statistics.median(compared_seconds(r) for r in further)
    out["step_seconds"] = {
        step: statistics.median(s["seconds"] for r in further for s in r["steps"] if s["step"] == step) for step in steps
    }
    out["peak_jvm_heap"] = max(peak_of(r, "jvm_heap") for r in further)
    out["peak_total"] = max(peak_of(r, "total") for r in further)
    out["silver_gold_bytes_after_backfill"] = silver_gold(backfill)
    out["silver_gold_growth_per_night"] = (silver_gold(last) - silver_gold(backfill)) / len(further)
    out["bronze_growth_per_night"] = (last["layer_bytes"].get("bronze", 0) - backfill["layer_bytes"].get("bronze", 0)) / len(further)
    out["lake_bytes"] = last["lake_bytes"]
    return out


def compare(results: list[dict]) -> dict | None:
    """A further night's ingest + features at the largest scale against the same night at 10x (else the next smaller scale)."""
    by_scale = {r["scale"]: r for r in results}
    largest = max(by_scale)
    smaller = [n for n in by_scale if n < largest]
    if not smaller:
        return None
    ref = 10 if 10 in smaller else max(smaller)
    big, small = by_scale[largest]["nights"][1:], by_scale[ref]["nights"][1:]
    pairs = [(compared_seconds(b), compared_seconds(s)) for b, s in zip(big, small)]
    if not pairs:
        return None
    ratios = [b / s for b, s in pairs]
    return {
        "scale": largest,
        "reference": ref,
        "seconds": statistics.median(b for b, _ in pairs),
        "reference_seconds": statistics.median(s for _, s in pairs),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
    }


def summary_table(summaries: list[dict]):
    from rich.table import Table

    table = Table(title="a further night, per scale (medians over the nights after the backfill)")
    columns = ("scale", "backfill s", "night s (ingest+features)", "heap MB", "all MB", "silver+gold MB after backfill",
               "silver+gold MB/night", "bronze MB/night", "lake MB at the end")  # fmt: skip
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for s in summaries:
        if "night_seconds" not in s:
            table.add_row(f"{s['scale']}x", f"{s['backfill_seconds']:.1f}", *[""] * (len(columns) - 2))
            continue
        table.add_row(
            f"{s['scale']}x",
            f"{s['backfill_seconds']:.1f}",
            f"{s['night_seconds']:.1f}",
            f"{s['peak_jvm_heap'] / MB:,.0f}",
            f"{s['peak_total'] / MB:,.0f}",
            f"{s['silver_gold_bytes_after_backfill'] / MB:,.2f}",
            f"{s['silver_gold_growth_per_night'] / MB:,.2f}",
            f"{s['bronze_growth_per_night'] / MB:,.2f}",
            f"{s['lake_bytes'] / MB:,.1f}",
        )
    return table


def bar_lines(summaries: list[dict], comparison: dict | None) -> list[str]:
    """The figures the scale work is judged by, in words."""
    lines = []
    if comparison is not None:
        c = comparison
        per_night = ", ".join(f"{r:.2f}x" for r in c["ratios"])
        lines.append(
            f"{c['scale']}x vs {c['reference']}x, a further night's ingest+features: {c['seconds']:.1f} s vs {c['reference_seconds']:.1f} s "
            f"= {c['ratio']:.2f}x (median; per night {per_night}) for a shop {c['scale'] / c['reference']:g}x larger"
        )
    largest = summaries[-1]
    if "silver_gold_growth_per_night" in largest:
        growth, base = largest["silver_gold_growth_per_night"], largest["silver_gold_bytes_after_backfill"]
        share = f"{growth / base:.1%} of its size after the backfill" if base else "from nothing after the backfill"
        bronze = largest["bronze_growth_per_night"]
        relative = f", {growth / bronze:.1f}x bronze's {bronze / MB:,.2f} MB" if bronze else ""
        lines.append(f"{largest['scale']}x: silver+gold grows {growth / MB:,.2f} MB per night ({share}{relative})")
    return lines


def draw_chart(results: list[dict], path: str) -> None:
    """Per-night seconds and lake bytes against the night, one line per scale (silver + gold dashed)."""
    from matplotlib.ticker import LogFormatter, MaxNLocator

    from shoplake.charts import COLOURS, INK, figure, plain_axes, save_svg_png

    fig = figure(1100, 420)
    cost, storage = fig.subplots(1, 2)
    for i, result in enumerate(results):
        colour = COLOURS[i % len(COLOURS)]
        nights = result["nights"]
        further = nights[1:]
        label = f"{result['scale']}x"
        cost.plot([r["night"] for r in further], [r["seconds"] for r in further], marker="o", ms=3, color=colour, label=label)
        x = [r["night"] for r in nights]
        storage.plot(x, [r["lake_bytes"] / MB for r in nights], marker="o", ms=3, color=colour, label=f"{label} lake")
        storage.plot(x, [silver_gold(r) / MB for r in nights], ls="--", color=colour, label=f"{label} silver+gold")
    steps = "+".join(s["step"] for s in results[0]["nights"][0]["steps"])
    cost.set_title(f"seconds of a further night ({steps})", color=INK["text"], fontsize=10)
    storage.set_title("bytes on disk after each night (0: the backfill)", color=INK["text"], fontsize=10)
    for ax, unit in ((cost, "seconds"), (storage, "MB")):
        plain_axes(ax)
        ax.set_yscale("log")
        # Plain numbers on the log axis; minor ticks labelled only where few decades leave room.
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"night after the backfill of {results[0]['backfill_days']} days", color=INK["text"], fontsize=9)
        ax.set_ylabel(unit, color=INK["text"], fontsize=9)
        ax.legend(fontsize=8, frameon=False)
    save_svg_png(fig, Path(path).with_suffix(""))


def machine() -> dict:
    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
    }


def report(results: list[dict], console) -> tuple[list[dict], dict | None]:
    summaries = [summarize(r) for r in results]
    comparison = compare(results)
    console.print(summary_table(summaries))
    for line in bar_lines(summaries, comparison):
        console.print(line, soft_wrap=True)
    return summaries, comparison


# ---------------------------------------------------------------- main


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
