"""The categorization run: category models side by side on ``gold.product_text``, the best registered."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from shoplake import columns as C
from shoplake.categorize.schemas import PRODUCT_TEXT, TASK_CATEGORIZATION
from shoplake.config import Config
from shoplake.text.bundle import CATEGORIZATION
from shoplake.text.run import TextResult, TextTask, run_text_task


def categorization_task(cfg: Config) -> TextTask:
    """The categorization run's :class:`~shoplake.text.run.TextTask`: categories, no hand-off."""
    cc = cfg.categorization
    return TextTask(
        name=CATEGORIZATION, metrics_task=TASK_CATEGORIZATION, spec=PRODUCT_TEXT, label_column=C.CATEGORY, settings=cc,
        max_train_rows=cc.max_train_rows, fixed_threshold=cc.disagreement_confidence,
    )  # fmt: skip


def run_categorization(cfg: Config, lake, run_date: dt.date | None = None, *, name: str | None = None,
                       register: bool = True, on_step: Callable[[str], None] | None = None) -> TextResult:  # fmt: skip
    """Train, compare and register the product category models on ``gold.product_text`` of ``run_date``.

    Arguments and errors as :func:`shoplake.support.train.run_support`, with ``categorization`` settings.
    """
    return run_text_task(cfg, lake, categorization_task(cfg), run_date, name, register, on_step)
