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
from typing import Any

import yaml
from pydantic import ValidationError

from shoplake.config.ads import AdsConfig
from shoplake.config.base import ConfigError, Distribution, SearchSpace, Strict
from shoplake.config.forecast import ForecastingConfig
from shoplake.config.fraud import FraudConfig, FraudFeatureTableConfig
from shoplake.config.platform import (
    ClusterConfig,
    EvaluationConfig,
    ExtraFieldConfig,
    FeaturesConfig,
    GenerateConfig,
    IngestConfig,
    LakeConfig,
    LandingConfig,
    RayConfig,
    RegistryConfig,
    ServeConfig,
    SparkConfig,
    TextEncoderConfig,
    TrainingConfig,
    TuningConfig,
)
from shoplake.config.recommend import RecommenderConfig, SequenceModelConfig
from shoplake.config.text import CategorizationConfig, FineTuningConfig, SupportConfig

__all__ = [
    "AdsConfig", "CategorizationConfig", "ClusterConfig", "Config", "ConfigError", "Distribution", "EvaluationConfig",
    "ExtraFieldConfig", "FeaturesConfig", "FineTuningConfig", "ForecastingConfig", "FraudConfig", "FraudFeatureTableConfig",
    "GenerateConfig", "IngestConfig", "LakeConfig", "LandingConfig", "RayConfig", "RecommenderConfig", "RegistryConfig",
    "SearchSpace", "SequenceModelConfig", "ServeConfig", "SparkConfig", "SupportConfig", "TextEncoderConfig", "TrainingConfig",
    "TuningConfig", "load_config",
]  # fmt: skip

CONF_DIR_ENV = "SHOPLAKE_CONF_DIR"
_FREE_FORM_MAPS = (("spark", "conf"), ("lake", "storage_options"))
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Config(Strict):
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
PACKAGE_CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


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
