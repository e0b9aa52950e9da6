"""The scale benchmark's report: a table per scale, a further night per scale, the comparison between scales, the chart."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path

#: The steps whose seconds the comparison between scales adds up.
COMPARED_STEPS = ("ingest", "features")
MB = 1e6


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
