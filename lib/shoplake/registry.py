"""The model registry: model bundles as versions of MLflow registered models.

Training logs a bundle folder (a folder with a ``bundle.json``) with :func:`log_model`:
one MLflow run holding its parameters, metrics, the Delta versions of the tables it
was trained on (tags ``delta.<table>.version``) and the folder itself (artifact
``bundle``), registered as a new version of ``recommender.registered_model`` (the
recommender) or of the name a caller passes (``forecasting.registered_model``). The
alias ``registry.serving_alias`` names the version that batch scoring and the
endpoints use; :func:`load_serving_bundle` fetches the recommender's.

With ``registry.uri`` unset the registry is a SQLite file under the lake,
``<lake.root>/_mlflow/mlflow.db``, and artifacts live beside it in
``<lake.root>/_mlflow/artifacts``, so a lake folder carries its models along.

Every function builds its own :class:`mlflow.MlflowClient` from the config and never
touches MLflow's process-wide tracking URI. Readers never create the registry: a lake
without one answers :class:`NoServingModel`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from shoplake.config import Config

log = logging.getLogger(__name__)

#: The type of a loaded bundle.
B = TypeVar("B")

#: Artifact folder of the bundle inside an MLflow run.
BUNDLE_ARTIFACT = "bundle"
#: Tags on runs and model versions.
KIND_TAG = "model_kind"
RUN_DATE_TAG = "run_date"
TABLE_VERSION_TAG = "delta.{table}.version"
#: The metric shown first when versions are listed (after name sanitising).
KEY_METRIC = "ndcg_at_10"
#: Where downloaded bundles are kept, one folder per version and run, under the temp dir.
CACHE_DIR = "shoplake-models"

_MLFLOW_LOGGERS = ("mlflow", "alembic")
_PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
_BAD_METRIC_CHARS = re.compile(r"[^0-9A-Za-z_\-. :/]")
_REMOTE_SCHEMES = ("http://", "https://", "databricks")


class NoServingModel(LookupError):
    """The registry holds no model version to serve or score (none logged, alias unset, version unknown)."""


@dataclass
class ModelVersionInfo:
    """One registered version of the recommender.

    Attributes:
        name: Registered model name.
        version: Version number as MLflow gives it (a string, e.g. ``"3"``).
        run_id: MLflow run that logged it.
        kind: Model family of the bundle (``mf``, ``sasrec``, ...).
        run_date: Features date it was trained for (ISO), if recorded.
        aliases: Aliases pointing at this version.
        metrics: Metrics of its run (sanitised names, e.g. ``ndcg_at_10``).
        created_at: Registration time, UTC.
    """

    name: str
    version: str
    run_id: str
    kind: str | None
    run_date: str | None = None
    aliases: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    created_at: dt.datetime | None = None

    @property
    def key_metric(self) -> float | None:
        """:data:`KEY_METRIC` of the run (plain, or of this model on all users), or None when not logged."""
        for name in (KEY_METRIC, f"{self.kind}.all.{KEY_METRIC}", f"{self.kind}.{KEY_METRIC}"):
            if name in self.metrics:
                return self.metrics[name]
        return None


def _is_uri(path: str) -> bool:
    return "://" in path


def _mlflow_root(cfg: Config) -> str:
    return f"{cfg.lake.root.rstrip('/')}/_mlflow"


def tracking_uri(cfg: Config) -> str:
    """The MLflow tracking and registry URI of this configuration.

    Args:
        cfg: Configuration; ``registry.uri`` wins, else a SQLite file
            under a local lake root.

    Returns:
        ``cfg.registry.uri`` or ``sqlite:///<lake root>/_mlflow/mlflow.db``.

    Raises:
        ValueError: The lake root is a URI (object storage) and no registry URI is set.
    """
    if cfg.registry.uri:
        return cfg.registry.uri
    if _is_uri(cfg.lake.root):
        raise ValueError(
            f"lake.root {cfg.lake.root} is not a local folder, so the model registry cannot be a SQLite file in it: "
            "set registry.uri (an MLflow tracking server or database URI)"
        )
    return f"sqlite:///{Path(cfg.lake.root).resolve()}/_mlflow/mlflow.db"


def _sqlite_file(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :])
    return None


def _artifact_location(cfg: Config, uri: str) -> str | None:
    # A tracking server decides where artifacts go; otherwise they stay with the lake (never ./mlruns).
    if uri.startswith(_REMOTE_SCHEMES):
        return None
    root = _mlflow_root(cfg)
    return f"{root}/artifacts" if _is_uri(root) else str(Path(root).resolve() / "artifacts")


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow at warnings only, and without download progress bars while inside."""
    # Importing mlflow sets its loggers to INFO, so import it before lowering them.
    importlib.import_module("mlflow")

    for name in _MLFLOW_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    old_bar = os.environ.get(_PROGRESS_BAR_ENV)
    os.environ[_PROGRESS_BAR_ENV] = "false"
    try:
        yield
    finally:
        if old_bar is None:
            os.environ.pop(_PROGRESS_BAR_ENV, None)
        else:
            os.environ[_PROGRESS_BAR_ENV] = old_bar


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _reader_client(cfg: Config):
    """A client for reading, or NoServingModel when the registry does not exist yet."""
    uri = tracking_uri(cfg)
    db = _sqlite_file(uri)
    if db is not None and not db.is_file():
        raise NoServingModel(f"no model registry at {db}: train and register a model first (shoplake nightly, or a train-* command)")
    return _client(uri)


def metric_name(name: str) -> str:
    """An MLflow-safe metric name: ``ndcg@10`` -> ``ndcg_at_10``; other odd characters -> ``_``."""
    return _BAD_METRIC_CHARS.sub("_", name.replace("@", "_at_"))


def _param_items(params: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _param_items(value, f"{name}.")
        else:
            yield metric_name(name), str(value)[:6000]


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or "not found" in str(exc)


def _registered(cfg: Config, registered_model: str | None) -> str:
    return registered_model or cfg.recommender.registered_model


def _experiment_id(client, cfg: Config, uri: str, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_location(cfg, uri))


def log_model(
    cfg: Config,
    bundle_folder: str | Path,
    *,
    model_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    table_versions: Mapping[str, int],
    run_date: dt.date | str,
    set_serving: bool = True,
    run_name: str | None = None,
    extra_artifacts: Mapping[str, str] | None = None,
    registered_model: str | None = None,
) -> ModelVersionInfo:
    """Log a saved bundle as an MLflow run and register it as a new model version.

    Args:
        cfg: Configuration (registry URI, registered model name, serving alias).
        bundle_folder: Folder written by :meth:`RecommenderBundle.save`.
        model_name: Model family of the bundle (``mf``, ``sasrec``, ...).
        params: Parameters of the run; nested mappings become dotted names.
        metrics: Evaluation metrics; names like ``ndcg@10`` are logged as ``ndcg_at_10``.
        table_versions: Delta version of each input table, e.g. ``{"gold.user_item_matrix": 4}``.
        run_date: Features date the model was trained for.
        set_serving: Move the serving alias to the new version.
        run_name: MLflow run name (default: ``<model_name>_<run_date>``).
        extra_artifacts: More files or folders to keep with the run: artifact folder -> local path.
        registered_model: Registered model to add the version to (default ``recommender.registered_model``;
            the forecaster passes ``forecasting.registered_model``).

    Returns:
        The registered version.

    Raises:
        FileNotFoundError: ``bundle_folder`` (or an extra artifact) does not exist.
    """
    from mlflow.entities import Metric, Param

    bundle_folder = Path(bundle_folder)
    if not bundle_folder.is_dir():
        raise FileNotFoundError(f"bundle folder {bundle_folder} does not exist")
    for path in (extra_artifacts or {}).values():
        if not Path(path).exists():
            raise FileNotFoundError(f"artifact {path} does not exist")
    run_date = run_date.isoformat() if isinstance(run_date, dt.date) else str(run_date)
    uri = tracking_uri(cfg)
    db = _sqlite_file(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    registered = _registered(cfg, registered_model)
    with _quiet_mlflow():
        client = _client(uri)
        experiment_id = _experiment_id(client, cfg, uri, registered)
        tags = {KIND_TAG: model_name, RUN_DATE_TAG: run_date}
        tags.update({TABLE_VERSION_TAG.format(table=table): str(int(v)) for table, v in table_versions.items()})
        run = client.create_run(experiment_id, run_name=run_name or f"{model_name}_{run_date}", tags=tags)
        run_id = run.info.run_id
        try:
            now = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[Metric(metric_name(k), float(v), now, 0) for k, v in metrics.items()],
                params=[Param(k, v) for k, v in _param_items(params)],
            )
            client.log_artifacts(run_id, str(bundle_folder), BUNDLE_ARTIFACT)
            for artifact_path, local in (extra_artifacts or {}).items():
                if Path(local).is_dir():
                    client.log_artifacts(run_id, str(local), artifact_path)
                else:
                    client.log_artifact(run_id, str(local), artifact_path)
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id)
        try:
            client.create_registered_model(registered, description=f"{registered}: model bundles for batch scoring and serving.")
        except Exception as exc:  # noqa: BLE001 - it exists already (the error type differs by store)
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        source = f"{client.get_run(run_id).info.artifact_uri}/{BUNDLE_ARTIFACT}"
        mv = client.create_model_version(registered, source, run_id, tags={KIND_TAG: model_name, RUN_DATE_TAG: run_date})
        aliases: list[str] = []
        if set_serving:
            client.set_registered_model_alias(registered, cfg.registry.serving_alias, mv.version)
            aliases.append(cfg.registry.serving_alias)
    log.info(
        "registered %s version %s (%s, run date %s, run %s)%s",
        registered, mv.version, model_name, run_date, run_id,
        f"; alias {cfg.registry.serving_alias!r} moved to it" if set_serving else "",
    )  # fmt: skip
    return ModelVersionInfo(
        name=registered, version=str(mv.version), run_id=run_id, kind=model_name, run_date=run_date,
        aliases=aliases, metrics={metric_name(k): float(v) for k, v in metrics.items()},
        created_at=_from_millis(mv.creation_timestamp),
    )  # fmt: skip


def _from_millis(ms: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc) if ms else None


def _info(mv, aliases: list[str], metrics: dict[str, float] | None = None) -> ModelVersionInfo:
    tags = mv.tags or {}
    return ModelVersionInfo(
        name=mv.name, version=str(mv.version), run_id=mv.run_id, kind=tags.get(KIND_TAG), run_date=tags.get(RUN_DATE_TAG),
        aliases=sorted(aliases), metrics=metrics or {}, created_at=_from_millis(mv.creation_timestamp),
    )  # fmt: skip


def _alias_map(client, name: str) -> dict[str, list[str]]:
    """Version -> its aliases, for one registered model."""
    out: dict[str, list[str]] = {}
    for alias, version in (client.get_registered_model(name).aliases or {}).items():
        out.setdefault(str(version), []).append(alias)
    return out


def resolve_version(cfg: Config, version: str | int | None = None, registered_model: str | None = None) -> ModelVersionInfo:
    """The registered version to use: ``version``, or the one the serving alias names.

    ``registered_model`` defaults to ``recommender.registered_model``.

    Raises:
        NoServingModel: No registry, no registered model, the alias is unset or the
            version does not exist.
    """
    name, alias = _registered(cfg, registered_model), cfg.registry.serving_alias
    with _quiet_mlflow():
        client = _reader_client(cfg)
        try:
            aliases = _alias_map(client, name)
        except Exception as exc:  # noqa: BLE001
            if _is_missing(exc):
                raise NoServingModel(f"no model registered as {name!r} in {tracking_uri(cfg)}") from None
            raise
        try:
            if version is None:
                mv = client.get_model_version_by_alias(name, alias)
            else:
                mv = client.get_model_version(name, str(version))
        except Exception as exc:  # noqa: BLE001
            if not _is_missing(exc):
                raise
            if version is None:
                raise NoServingModel(
                    f"model {name!r} has no version with alias {alias!r}: register one with set_serving, "
                    f"or point the alias at a version (versions: {', '.join(v.version for v in list_versions(cfg, name)) or 'none'})"
                ) from None
            raise NoServingModel(f"model {name!r} has no version {version}") from None
    return _info(mv, aliases.get(str(mv.version), []))


def download_bundle(
    cfg: Config, version: str | int | None = None, dst: str | Path | None = None, registered_model: str | None = None
) -> tuple[Path, ModelVersionInfo]:
    """Fetch the bundle folder of a registered version to local disk.

    Without ``dst`` the folder is cached under the temp dir, one per version and run,
    and reused: a version's files never change. Several processes may fetch the same
    version at once (Serve replicas, scoring actors); each downloads into its own
    folder and renames it into place, so nobody reads a half-written bundle.

    Args:
        cfg: Configuration.
        version: A version number; None: the one the serving alias names.
        dst: Folder to download into (created; any bundle there is replaced).
        registered_model: Default ``recommender.registered_model``.

    Returns:
        The local bundle folder and the version's description.

    Raises:
        NoServingModel: Nothing to download (see :func:`resolve_version`).
    """
    import mlflow.artifacts

    info = resolve_version(cfg, version, registered_model)
    if dst is None:
        safe = re.sub(r"[^0-9A-Za-z_.-]", "_", info.name)
        target = Path(tempfile.gettempdir()) / CACHE_DIR / safe / f"v{info.version}-{info.run_id}"
        if (target / "bundle.json").is_file():
            return target, info
    else:
        target = Path(dst)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        with _quiet_mlflow():
            local = mlflow.artifacts.download_artifacts(
                run_id=info.run_id, artifact_path=BUNDLE_ARTIFACT, dst_path=str(staging), tracking_uri=tracking_uri(cfg)
            )
        if dst is not None and target.exists():
            shutil.rmtree(target)
        try:
            os.replace(local, target)
        except OSError:
            # Another process put the same version in place first: use theirs.
            if not (target / "bundle.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("model %s version %s (%s) downloaded to %s", info.name, info.version, info.kind, target)
    return target, info


def list_versions(cfg: Config, registered_model: str | None = None) -> list[ModelVersionInfo]:
    """Every registered version of a model (default the recommender), newest first, with aliases and run metrics.

    Returns:
        The versions; empty when nothing is registered (or there is no registry).
    """
    name = _registered(cfg, registered_model)
    try:
        client = _reader_client(cfg)
    except NoServingModel:
        return []
    with _quiet_mlflow():
        try:
            aliases = _alias_map(client, name)
        except Exception as exc:  # noqa: BLE001
            if _is_missing(exc):
                return []
            raise
        out = []
        for mv in client.search_model_versions(f"name='{name}'"):
            metrics = dict(client.get_run(mv.run_id).data.metrics) if mv.run_id else {}
            out.append(_info(mv, aliases.get(str(mv.version), []), metrics))
    return sorted(out, key=lambda v: int(v.version), reverse=True)


def load_bundle(
    cfg: Config, load: Callable[[Path], B], version: str | int | None = None, registered_model: str | None = None
) -> tuple[B, ModelVersionInfo]:
    """The one registry loader: download a registered version's bundle and load it with the use case's ``load``.

    Args:
        cfg: Configuration.
        load: The bundle class's loader (``FraudBundle.load``), given the local folder.
        version: A version number; None: the one the serving alias names.
        registered_model: Default ``recommender.registered_model``.

    Raises:
        NoServingModel: Nothing to load (see :func:`resolve_version`).
    """
    folder, info = download_bundle(cfg, version, registered_model=registered_model)
    return load(folder), info


def bundle_folder_here(cfg: Config, folder: str | Path, version: str | int, registered_model: str | None = None) -> Path:
    """``folder`` when this machine has it, else the version's bundle downloaded here.

    Batch scorers pass the driver's bundle folder to their Ray workers; a worker on
    another node (which has no such folder) downloads the same version instead.
    """
    if Path(folder).is_dir():
        return Path(folder)
    return download_bundle(cfg, version, registered_model=registered_model)[0]
