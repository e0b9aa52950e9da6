"""The support run: intent models side by side on ``gold.support_training``, the best registered with its hand-off threshold and answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.config import Config
from shoplake.support.schemas import SUPPORT_TRAINING, TASK_SUPPORT
from shoplake.text.bundle import SUPPORT
from shoplake.text.run import TextResult, TextTask, run_text_task
from shoplake.text.splits import TRAIN


def _answers(classifier, rows: pa.Table, labels: tuple[str, ...]):
    from shoplake.support.answers import AnswerStore

    usable = rows.filter(
        pc.and_(pc.and_(pc.equal(rows[C.SPLIT], TRAIN), pc.is_valid(rows[C.RESOLUTION])), pc.is_in(rows[C.INTENT], pa.array(labels)))
    )
    records = usable.select([C.TICKET_ID, C.TEXT, C.INTENT, C.RESOLUTION, C.ORDER_ID]).to_pylist()
    return AnswerStore.build(records, classifier.embed([r[C.TEXT] for r in records]))


def support_task(cfg: Config) -> TextTask:
    """The support run's :class:`~shoplake.text.run.TextTask`: intents with a hand-off, and answers in the bundle."""
    sc = cfg.support
    return TextTask(
        name=SUPPORT, metrics_task=TASK_SUPPORT, spec=SUPPORT_TRAINING, label_column=C.INTENT, settings=sc,
        out_of_scope=tuple(sc.out_of_scope_intents), max_train_rows=sc.max_train_rows,
        min_answered=sc.min_answered, min_handoff=sc.min_handoff, attach=_answers,
    )  # fmt: skip


def run_support(cfg: Config, lake, run_date: dt.date | None = None, *, name: str | None = None, register: bool = True,
                on_step: Callable[[str], None] | None = None) -> TextResult:  # fmt: skip
    """Train, compare and register the support intent models on ``gold.support_training`` of ``run_date``.

    Args:
        cfg: ``support`` (models, out-of-scope intents, answer rate, registry name),
            ``fine_tuning``, ``text_encoder``, ``ray``, ``training``.
        lake: The lake.
        run_date: Default the latest partition.
        name: Prefix of the run's folders (default ``support_<run_date>_<UTC time>``).
        register: Log the champion to MLflow and point the serving alias at it.
        on_step: Called with a short description as each step starts.

    Raises:
        MissingTextTableError: No ``gold.support_training`` for the run date.
        TooFewTextsError: Too few labelled messages.
    """
    return run_text_task(cfg, lake, support_task(cfg), run_date, name, register, on_step)
