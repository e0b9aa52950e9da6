"""Check data against a table spec before it is written.

Writers select exactly the spec's columns, in the spec's order. A missing column or a
column of another type is an error naming the table and the column; lossless
widenings (int to long, float to double) and all-null columns are cast.
"""

from __future__ import annotations

import pyarrow as pa

from shoplake.errors import InputError
from shoplake.lake.spec import TableSpec, arrow_type, spark_type


class SchemaMismatchError(InputError):
    """Data does not match its table's spec; the message names table and column."""


_WIDENINGS = {("int", "long"), ("float", "double"), ("int", "double"), ("long", "double")}


def _spark_dtype_name(dt) -> str | None:
    from pyspark.sql import types as T

    scalars = {
        T.StringType: "string",
        T.IntegerType: "int",
        T.LongType: "long",
        T.FloatType: "float",
        T.DoubleType: "double",
        T.BooleanType: "boolean",
        T.DateType: "date",
        T.TimestampType: "timestamp",
    }
    if isinstance(dt, T.ArrayType):
        inner = _spark_dtype_name(dt.elementType)
        return f"array<{inner}>" if inner else None
    for cls, name in scalars.items():
        if type(dt) is cls:
            return name
    return None


def conform_spark(df, spec: TableSpec):
    """Select and cast a Spark DataFrame's columns to the spec.

    Args:
        df: Data to write.
        spec: The target table's spec.

    Returns:
        A DataFrame with exactly the spec's columns, in order.

    Raises:
        SchemaMismatchError: A spec column is missing or has an incompatible type.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    fields = {f.name: f.dataType for f in df.schema.fields}
    missing = [c.name for c in spec.columns if c.name not in fields]
    if missing:
        raise SchemaMismatchError(f"table {spec.full_name}: missing column(s) {', '.join(missing)} (data has: {', '.join(fields)})")
    exprs = []
    for col in spec.columns:
        actual = fields[col.name]
        name = _spark_dtype_name(actual)
        if name == col.dtype:
            exprs.append(F.col(col.name))
        elif isinstance(actual, T.NullType) or (name, col.dtype) in _WIDENINGS:
            exprs.append(F.col(col.name).cast(spark_type(col.dtype)).alias(col.name))
        else:
            raise SchemaMismatchError(f"table {spec.full_name}: column {col.name} has type {actual.simpleString()}, spec says {col.dtype}")
    return df.select(*exprs)


def _arrow_dtype_name(t: pa.DataType) -> str | None:
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _arrow_dtype_name(t.value_type)
        return f"array<{inner}>" if inner else None
    checks = (
        (pa.types.is_string, "string"),
        (pa.types.is_large_string, "string"),
        (pa.types.is_int32, "int"),
        (pa.types.is_int64, "long"),
        (pa.types.is_float32, "float"),
        (pa.types.is_float64, "double"),
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_date32, "date"),
        (pa.types.is_timestamp, "timestamp"),
    )
    for pred, name in checks:
        if pred(t):
            return name
    return None


def check_arrow_schema(schema: pa.Schema, spec: TableSpec) -> None:
    """Raise :class:`SchemaMismatchError` unless ``schema`` can be conformed to ``spec``."""
    names = schema.names
    missing = [c.name for c in spec.columns if c.name not in names]
    if missing:
        raise SchemaMismatchError(f"table {spec.full_name}: missing column(s) {', '.join(missing)} (data has: {', '.join(names)})")
    for col in spec.columns:
        actual = schema.field(col.name).type
        name = _arrow_dtype_name(actual)
        if name == col.dtype or pa.types.is_null(actual) or (name, col.dtype) in _WIDENINGS:
            continue
        raise SchemaMismatchError(f"table {spec.full_name}: column {col.name} has type {actual}, spec says {col.dtype}")


def conform_arrow(data: pa.Table | pa.RecordBatch, spec: TableSpec) -> pa.Table:
    """Select and cast Arrow data to the spec (timestamps normalised to UTC microseconds).

    Raises:
        SchemaMismatchError: A column is missing, mistyped, or null where the spec forbids it.
    """
    check_arrow_schema(data.schema, spec)
    arrays = []
    for col in spec.columns:
        arr = data.column(col.name)
        target = arrow_type(col.dtype)
        if arr.type != target:
            arr = arr.cast(target)
        if not col.nullable and arr.null_count:
            raise SchemaMismatchError(f"table {spec.full_name}: column {col.name} is not nullable but {arr.null_count} row(s) are null")
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=spec.arrow_schema())
