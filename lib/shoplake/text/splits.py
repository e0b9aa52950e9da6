"""The stable train/validation/test split that every text table carries, and the run-date column they share."""

from __future__ import annotations

from shoplake import columns as C
from shoplake.lake.spec import Col

#: Values of ``split``.
TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS = (TRAIN, VALIDATION, TEST)

#: The ``run_date`` column of every text table.
RUN_DATE_COL = Col(C.RUN_DATE, "date", False, "The day the table is built for; only data before its midnight (UTC) is used.")
