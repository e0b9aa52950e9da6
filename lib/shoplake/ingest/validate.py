"""Type landing rows and split them into valid rows and quarantined rows with reasons.

Pure functions on DataFrames: no I/O. A row is quarantined when a required field is
missing, a value does not parse as its type, or a contract check fails; the reason
lists every problem as ``field: why``.
"""

from __future__ import annotations

from shoplake import columns as C
from shoplake.ingest.landing import LandingSource
from shoplake.lake.spec import spark_ddl_type

TYPED_PREFIX = "__typed_"


def _typed(name: str) -> str:
    return f"{TYPED_PREFIX}{name}"


def compute_validated(df, contract: LandingSource):
    """Add typed columns and a ``_reason`` column (empty when the row is valid).

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
    reasons = [F.when(F.col("_corrupt").isNotNull(), F.lit("record: malformed, cannot be parsed"))]
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
    raw_json = F.coalesce(F.col("_corrupt"), F.to_json(F.struct(*[F.col(n) for n in contract.field_names])))
    out = df.select("*", raw_json.alias(C.RAW_RECORD), *typed_cols, F.concat_ws("; ", *reasons).alias("_parse_reason"))
    for f in contract.fields:
        out = out.drop(f.name).withColumnRenamed(_typed(f.name), f.name)
    checks = [F.when(~F.coalesce(F.expr(c.condition), F.lit(True)), F.lit(f"{c.field}: {c.message}")) for c in contract.checks]
    reason = F.concat_ws("; ", F.when(F.length("_parse_reason") > 0, F.col("_parse_reason")), *checks)
    return out.withColumn(C.REASON, reason).drop("_parse_reason")


def split_valid(validated):
    """Rows with an empty reason, and rows with one."""
    from pyspark.sql import functions as F

    bad = F.length(F.col(C.REASON)) > 0
    return validated.where(~bad), validated.where(bad)
