"""Rows that break the landing contract on purpose (``bad_rows``), to test ingest and quarantine."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from shoplake import columns as C
from shoplake.datagen.shop.common import _BAD_MODES, _EVENT_TYPE_NAMES, _ID_FIELDS, _S_BAD, _SEARCH, _VIEW, _rng


class CorruptionMixin:
    """Rows that break the landing contract on purpose (``bad_rows``), to test ingest and quarantine. A part of :class:`shoplake.datagen.synthetic._Shop`."""

    def _inject_bad_rows(self, d: int, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        rng = _rng(self.p.seed, _S_BAD, d)
        out = {}
        for source, table in tables.items():
            n = table.num_rows
            k = int(rng.binomial(n, self.p.bad_rows)) if n else 0
            if k == 0:
                out[source] = table
                continue
            modes = _BAD_MODES[source]
            records = table.to_pylist()
            bad = []
            for j, src in enumerate(np.sort(rng.choice(n, size=k, replace=True))):
                row = dict(records[src])
                fld, reason, how = modes[rng.integers(len(modes))]
                if how == "null_item" and row[C.EVENT_TYPE] == _EVENT_TYPE_NAMES[_SEARCH]:
                    row[C.EVENT_TYPE] = _EVENT_TYPE_NAMES[_VIEW]
                id_field = _ID_FIELDS.get(source)
                if id_field and row[id_field] is not None:
                    row[id_field] = f"{row[id_field]}x{j + 1}"
                if how == "negate":
                    row[fld] = -abs(row[fld] or 0) - 1
                elif how == "zero":
                    row[fld] = 0
                elif how == "unknown":
                    row[fld] = {C.STATUS: "shipped", C.EVENT_TYPE: "hover", C.PAYMENT_METHOD: "crypto"}[fld]
                elif how == "blank":
                    row[fld] = "   "
                elif how in ("null", "null_item"):
                    row[fld] = None
                bad.append(row)
                self.bad_log.append(
                    {
                        "source": source,
                        "date": self.dates[d].isoformat(),
                        "row": n + j,
                        "field": fld,
                        "reason": reason,
                        "id": row[id_field] if id_field else None,
                    }
                )
            out[source] = pa.concat_tables([table, pa.Table.from_pylist(bad, schema=table.schema)])
        return out
