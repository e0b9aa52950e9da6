"""Table specifications: the one description of every table's columns, keys and layout.

A :class:`TableSpec` is engine-neutral. Column types are written as short type names
(``string``, ``long``, ``double``, ``timestamp``, ``array<float>``...) and converted
on demand to a Spark ``StructType`` or a PyArrow schema, so Spark jobs, Ray apps and
the Delta engines all check data against the same definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from shoplake import columns as C

LAYERS = ("bronze", "silver", "gold", "serving", "ops", "quarantine")

_SCALAR_ARROW = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}

_SCALAR_SPARK_DDL = {
    "string": "STRING",
    "int": "INT",
    "long": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


def _element_type(dtype: str) -> str | None:
    if dtype.startswith("array<") and dtype.endswith(">"):
        return dtype[len("array<") : -1]
    return None


def is_known_dtype(dtype: str) -> bool:
    """True for a scalar type name or ``array<scalar>``."""
    inner = _element_type(dtype)
    return (inner or dtype) in _SCALAR_ARROW


def arrow_type(dtype: str) -> pa.DataType:
    """PyArrow type for a spec type name."""
    inner = _element_type(dtype)
    if inner is not None:
        return pa.list_(_SCALAR_ARROW[inner])
    return _SCALAR_ARROW[dtype]


def spark_type(dtype: str):
    """Spark ``DataType`` for a spec type name."""
    from pyspark.sql.types import (
        ArrayType,
        BooleanType,
        DateType,
        DoubleType,
        FloatType,
        IntegerType,
        LongType,
        StringType,
        TimestampType,
    )

    scalars = {
        "string": StringType(),
        "int": IntegerType(),
        "long": LongType(),
        "float": FloatType(),
        "double": DoubleType(),
        "boolean": BooleanType(),
        "date": DateType(),
        "timestamp": TimestampType(),
    }
    inner = _element_type(dtype)
    if inner is not None:
        return ArrayType(scalars[inner], containsNull=True)
    return scalars[dtype]


def spark_ddl_type(dtype: str) -> str:
    """Spark SQL type name for a spec type name (for ``try_cast(... AS <type>)``)."""
    inner = _element_type(dtype)
    if inner is not None:
        return f"ARRAY<{_SCALAR_SPARK_DDL[inner]}>"
    return _SCALAR_SPARK_DDL[dtype]


@dataclass(frozen=True)
class Col:
    """One column of a table.

    Attributes:
        name: Column name.
        dtype: Spec type name (see module docstring).
        nullable: Whether nulls are allowed; keys are never nullable.
        doc: What the column means, shown by ``shoplake lake describe``.
    """

    name: str
    dtype: str
    nullable: bool = True
    doc: str = ""

    def __post_init__(self) -> None:
        if not is_known_dtype(self.dtype):
            raise ValueError(f"column {self.name!r}: unknown type {self.dtype!r}")


@dataclass(frozen=True)
class TableSpec:
    """Schema, keys and physical layout of one lake table.

    Attributes:
        name: Table name without layer, e.g. ``orders``.
        layer: One of :data:`LAYERS`.
        columns: Ordered columns.
        keys: Columns that identify a row (used by merge/upsert and dedup).
        partition_by: Partition columns (``run_date`` for per-day tables).
        description: One line on what the table holds.
    """

    name: str
    layer: str
    columns: tuple[Col, ...]
    keys: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    description: str = ""
    _by_name: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise ValueError(f"table {self.name!r}: unknown layer {self.layer!r}")
        names = [c.name for c in self.columns]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"table {self.full_name}: duplicate columns {sorted(dupes)}")
        for group, cols in (("key", self.keys), ("partition", self.partition_by)):
            missing = [c for c in cols if c not in names]
            if missing:
                raise ValueError(f"table {self.full_name}: {group} columns {missing} are not columns")
        self._by_name.update({c.name: c for c in self.columns})

    @property
    def full_name(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Col:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"table {self.full_name} has no column {name!r}") from None

    def arrow_schema(self) -> pa.Schema:
        """PyArrow schema, nullability included."""
        return pa.schema([pa.field(c.name, arrow_type(c.dtype), nullable=c.nullable) for c in self.columns])

    def spark_schema(self):
        """Spark ``StructType``, nullability included."""
        from pyspark.sql.types import StructField, StructType

        return StructType([StructField(c.name, spark_type(c.dtype), c.nullable) for c in self.columns])


def history_columns(what: str) -> tuple[Col, ...]:
    """The columns a history table adds to its facts (``what``: "interaction"); see :mod:`shoplake.features.history`."""
    return (
        Col(C.EVENT_DATE, "date", False, f"UTC day of the {what}: the table's partition."),
        Col(C.KNOWN_FROM, "date", False, f"First run date whose snapshot holds the {what}."),
        Col(
            C.KNOWN_UNTIL,
            "date",
            True,
            "First run date whose snapshot no longer holds it (a later fact retracted it); null while it stands.",
        ),
    )
