"""Configuration: overlays, overrides, environment references and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoplake.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "lib" / "shoplake" / "conf"


def test_local_overlays_base_and_makes_paths_absolute():
    cfg = load_config("local")
    assert cfg.env == "local"
    assert cfg.spark.master == "local[2]"
    assert cfg.spark.conf["spark.sql.session.timeZone"] == "UTC"  # from base.yaml
    assert Path(cfg.lake.root).is_absolute()
    assert Path(cfg.lake.root) == ROOT / "lake"  # the checkout, when shoplake runs from one
    assert Path(cfg.conf_dir) == CONF


def test_relative_paths_do_not_depend_on_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Path(load_config("local").landing.root) == ROOT / "data" / "landing"


def test_a_shops_own_folder_holds_the_files_and_roots_the_paths(tmp_path, monkeypatch):
    own = tmp_path / "shop" / "settings"
    own.mkdir(parents=True)
    for name in ("base.yaml", "local.yaml"):
        (own / name).write_text((CONF / name).read_text())
    monkeypatch.setenv("SHOPLAKE_CONF_DIR", str(own))
    cfg = load_config("local")
    assert Path(cfg.conf_dir) == own and Path(cfg.project_root) == own.parent
    assert Path(cfg.lake.root) == own.parent / "lake"
    with pytest.raises(ConfigError, match="environments in .*: local"):
        load_config("cluster")


def test_set_overrides_parse_yaml_values():
    cfg = load_config("local", ["lake.engine=delta-rs", "ray.num_workers=3", "ingest.sources=[orders, events]"])
    assert cfg.lake.engine == "delta-rs"
    assert cfg.ray.num_workers == 3
    assert cfg.ingest.sources == ["orders", "events"]


def test_free_form_keys_may_contain_dots():
    cfg = load_config("local", ["spark.conf.spark.sql.shuffle.partitions=3"])
    assert cfg.spark.conf["spark.sql.shuffle.partitions"] == "3"


def test_uri_lake_root_is_kept():
    assert load_config("local", ["lake.root=s3://bucket/lake"]).lake.root == "s3://bucket/lake"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lake.engin=delta-rs", "unknown config key 'lake.engin'"),
        ("lake.engine=spark", "config key 'lake.engine'"),
        ("ray.num_workers=zero", "config key 'ray.num_workers'"),
        ("ingest.sources=[ordres]", "unknown landing sources ['ordres']"),
        ("nonsense", "must look like key=value"),
    ],
)
def test_bad_keys_and_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config("local", [override])


def test_unknown_environment_lists_the_known_ones():
    with pytest.raises(ConfigError, match="local"):
        load_config("staging")


def test_typo_in_a_yaml_file_names_the_key(tmp_path):
    (tmp_path / "base.yaml").write_text((CONF / "base.yaml").read_text())
    (tmp_path / "typo.yaml").write_text("spark:\n  mastr: local[1]\n")
    with pytest.raises(ConfigError, match="unknown config key 'spark.mastr'"):
        load_config("typo", conf_dir=tmp_path)


def test_cluster_config_reads_addresses_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPARK_MASTER_URL", "spark://10.0.0.5:7077")
    monkeypatch.setenv("SHOPLAKE_LAKE_ROOT", "s3://shop/lake")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = load_config("cluster")
    assert cfg.spark.master == "spark://10.0.0.5:7077"
    assert cfg.lake.root == "s3://shop/lake"
    assert cfg.ray.address == "auto"


def test_missing_environment_variable_without_default_is_named(tmp_path, monkeypatch):
    (tmp_path / "base.yaml").write_text((CONF / "base.yaml").read_text())
    (tmp_path / "prod.yaml").write_text("lake:\n  root: ${SHOPLAKE_TEST_UNSET_VAR}\n")
    monkeypatch.delenv("SHOPLAKE_TEST_UNSET_VAR", raising=False)
    with pytest.raises(ConfigError, match="SHOPLAKE_TEST_UNSET_VAR"):
        load_config("prod", conf_dir=tmp_path)
