"""The catalog: every table's spec, and where each table lives under the lake root.

Table names are ``<layer>.<name>`` and resolve to ``<lake_root>/<layer>/<name>``;
code asks the catalog instead of building paths by hand.
"""

from __future__ import annotations

import functools

from shoplake.lake.spec import TableSpec

_SPECS: dict[str, TableSpec] = {}


def register(*specs: TableSpec) -> None:
    """Add specs to the catalog; registering a different spec under a taken name is an error."""
    for spec in specs:
        known = _SPECS.get(spec.full_name)
        if known is not None and known != spec:
            raise ValueError(f"table {spec.full_name} is already registered with another spec")
        _SPECS[spec.full_name] = spec


@functools.cache
def _collect() -> None:
    # Loaded on first use, not at import: these modules and every use case import the lake.
    from shoplake.ingest import bronze
    from shoplake.lake import manifest
    from shoplake.monitor import profile
    from shoplake.train import model_metrics
    from shoplake.usecases import use_cases

    register(*bronze.SPECS, *manifest.SPECS, *model_metrics.SPECS, *profile.SPECS)
    for uc in use_cases():
        register(*uc.tables)


def get_spec(name: str | TableSpec) -> TableSpec:
    """The spec of a table by full name (``bronze.orders``); specs pass through."""
    if isinstance(name, TableSpec):
        return name
    _collect()
    try:
        return _SPECS[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known tables: {', '.join(sorted(_SPECS))}") from None


def all_specs() -> list[TableSpec]:
    """Every registered spec, ordered by layer then name."""
    _collect()
    return sorted(_SPECS.values(), key=lambda s: (s.layer, s.name))


def table_uri(lake_root: str, spec: TableSpec) -> str:
    """Location of a table: ``<lake_root>/<layer>/<name>``."""
    return f"{lake_root.rstrip('/')}/{spec.layer}/{spec.name}"
