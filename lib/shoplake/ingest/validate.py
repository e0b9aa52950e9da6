"""Type landing rows, resolve repeated keys, and split rows into valid ones and quarantined ones with reasons.

Pure functions on DataFrames: no I/O. A row is quarantined when the reader found it
damaged (cut short, not parsed, not UTF-8), a required field is missing, a value does
not parse as its type, a contract check fails, or it repeats the key of an earlier row
of its day (:func:`compute_deduplicated`); the reason lists every problem as
``field: why``.
"""

from __future__ import annotations

from shoplake import columns as C
from shoplake.ingest.landing import LandingSource
from shoplake.ingest.readers import CORRUPT, DAMAGE, RECORD_DAMAGE
from shoplake.lake.spec import spark_ddl_type

#: ``ingest.duplicates``: what happens to a row repeating an earlier row of its day, key and values alike.
DUPLICATE_MODES = ("drop", "quarantine")
#: How a row repeats an earlier row's key (null when it does not): :data:`DROPPED` or :data:`QUARANTINED`.
DUPLICATE = "_duplicate"
DROPPED, QUARANTINED = "dropped", "quarantined"

TYPED_PREFIX = "__typed_"


def _typed(name: str) -> str:
    return f"{TYPED_PREFIX}{name}"


def compute_validated(df, contract: LandingSource):
    """Add typed columns and a ``_reason`` column (empty when the row is valid).

    A damaged record (``_damage`` set by the reader) is quarantined with that reason
    first. Damage to the whole record (``record: ...``: cut short, not parsed, the
    header again) is its only reason, since what its fields lack follows from it; a
    damaged field (``country: not valid UTF-8``) comes with the other fields' reasons.

    Args:
        df: Text columns as produced by :func:`shoplake.ingest.readers.read_landing`.
        contract: The source's landing contract.

    Returns:
        ``df`` with every field typed (same names), the raw text kept as ``_raw``
        (a JSON object) and ``_reason``.
    """
    from pyspark.sql import functions as F

    text = {f.name: F.when(F.length(F.trim(F.col(f.name))) > 0, F.col(f.name)) for f in contract.fields}
    typed_cols = []
    reasons = []
    for f in contract.fields:
        raw = text[f.name]
        if f.dtype == "string":
            typed = raw
        elif f.dtype == "boolean":
            lowered = F.lower(F.trim(raw))
            typed = F.when(lowered.isin("true", "1", "yes", "y", "t"), F.lit(True)).when(
                lowered.isin("false", "0", "no", "n", "f"), F.lit(False)
            )
        else:
            typed = F.expr(f"try_cast(trim(`{f.name}`) AS {spark_ddl_type(f.dtype)})")
        typed_cols.append(typed.alias(_typed(f.name)))
        if f.required:
            reasons.append(F.when(raw.isNull(), F.lit(f"{f.name}: missing")))
        if f.dtype != "string":
            reasons.append(
                F.when(
                    raw.isNotNull() & typed.isNull(), F.concat(F.lit(f"{f.name}: not a {f.dtype} ('"), F.substring(raw, 1, 80), F.lit("')"))
                )
            )
    # Parse problems are judged on the raw text, so they are computed before the typed
    # columns take the fields' names; contract checks then run on the typed values.
    raw_json = F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*[F.col(n) for n in contract.field_names])))
    out = df.select("*", raw_json.alias(C.RAW_RECORD), *typed_cols, F.concat_ws("; ", *reasons).alias("_parse_reason"))
    for f in contract.fields:
        out = out.drop(f.name).withColumnRenamed(_typed(f.name), f.name)
    checks = [F.when(~F.coalesce(F.expr(c.condition), F.lit(True)), F.lit(f"{c.field}: {c.message}")) for c in contract.checks]
    whole = F.coalesce(~F.col(DAMAGE).startswith(RECORD_DAMAGE), F.lit(True))
    field_reasons = F.concat_ws("; ", F.when(F.length("_parse_reason") > 0, F.col("_parse_reason")), *checks)
    reason = F.concat_ws("; ", F.col(DAMAGE), F.when(whole & (F.length(field_reasons) > 0), field_reasons))
    return out.withColumn(C.REASON, reason).drop("_parse_reason")


def _file_and_record(file, number):
    """``<source>/<file name> record <n>``: where a row came from, short enough for a reason."""
    from pyspark.sql import functions as F

    return F.concat(F.regexp_extract(file, r"([^/]+/[^/]+)$", 1), F.lit(" record "), number.cast("string"))


def compute_deduplicated(validated, contract: LandingSource, mode: str = "drop"):
    """Resolve valid rows that repeat a key of the source (``contract.keys``) within a run date.

    Of the valid rows sharing a run date and a key, the first (by file, then record
    number) stays valid. A later one with the same values in every field is an exact
    repeat (a day delivered twice): with ``mode`` ``drop`` it is marked
    ``_duplicate = 'dropped'`` and lands nowhere (:func:`split_valid` leaves it out),
    with ``quarantine`` it is quarantined, naming the row it repeats. A later one with
    the same key but other values is quarantined in both modes: which of the two is
    right is the shop's call, and keeping either silently would replace the other.

    Args:
        validated: The output of :func:`compute_validated`, placed on its run dates.
        contract: The source's landing contract (its keys).
        mode: One of :data:`DUPLICATE_MODES`.

    Returns:
        ``validated`` with ``_duplicate`` (null, ``dropped`` or ``quarantined``) and
        the duplicates' reasons added to ``_reason``.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if mode not in DUPLICATE_MODES:
        raise ValueError(f"unknown duplicates mode {mode!r}; use one of {', '.join(DUPLICATE_MODES)}")
    valid = F.length(F.col(C.REASON)) == 0
    values = F.struct(*[F.col(n) for n in contract.field_names])
    day_and_key = Window.partitionBy("_valid", C.RUN_DATE, *contract.keys).orderBy(C.SOURCE_FILE, C.ROW_NUMBER)
    ranked = validated.withColumn("_valid", valid).select(
        "*",
        F.row_number().over(day_and_key).alias("_rank"),
        values.eqNullSafe(F.first(values).over(day_and_key)).alias("_same"),
        _file_and_record(F.first(C.SOURCE_FILE).over(day_and_key), F.first(C.ROW_NUMBER).over(day_and_key)).alias("_first_at"),
    )
    repeat = F.col("_valid") & (F.col("_rank") > 1)
    key = F.concat_ws(", ", *[F.concat(F.lit(f"{k}="), F.col(k).cast("string")) for k in contract.keys])
    exact = repeat & F.col("_same")
    duplicate = F.when(exact & F.lit(mode == "drop"), F.lit(DROPPED)).when(repeat, F.lit(QUARANTINED))
    reason = F.when(
        exact, F.concat(F.lit("duplicate: repeats "), F.col("_first_at"), F.lit(" (same key "), key, F.lit(" and values)"))
    ).when(repeat, F.concat(F.lit("duplicate key "), key, F.lit(": "), F.col("_first_at"), F.lit(" has it with other values")))
    quarantined = duplicate == F.lit(QUARANTINED)
    return (
        ranked.withColumn(DUPLICATE, duplicate)
        .withColumn(C.REASON, F.when(F.coalesce(quarantined, F.lit(False)), reason).otherwise(F.col(C.REASON)))
        .drop("_valid", "_rank", "_same", "_first_at")
    )


def split_valid(validated):
    """Rows with an empty reason that are not dropped repeats, and rows with a reason."""
    from pyspark.sql import functions as F

    bad = F.length(F.col(C.REASON)) > 0
    dropped = F.col(DUPLICATE) == F.lit(DROPPED) if DUPLICATE in validated.columns else F.lit(False)
    return validated.where(~bad & ~F.coalesce(dropped, F.lit(False))), validated.where(bad)
