"""Jobs on real (local) clusters: spark-submit to a Spark standalone master, ray job submit and serve deploy to a 2-node Ray cluster.

The clusters run on 127.0.0.1 with free ports and a run dir under pytest's tmp
folder; they come up once for this module and always come down. Run with
``pytest -m cluster`` (``make cluster-test``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.request
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml
from cluster_helpers import ROOT, cluster_config, run_logged, running_clusters, tail
from deltalake import DeltaTable

from shoplake import cluster
from shoplake import columns as C

pytestmark = pytest.mark.cluster

D1, D3 = dt.date(2024, 1, 1), dt.date(2024, 1, 3)


@pytest.fixture(scope="module")
def clusters(tmp_path_factory):
    cfg = cluster_config(tmp_path_factory.mktemp("cluster") / "run")
    with running_clusters(cfg) as state:
        yield cfg, state


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """Landing, lake, logs, and an unrelated folder the drivers run in."""
    root = tmp_path_factory.mktemp("work")
    (root / "elsewhere").mkdir()
    return root


@pytest.fixture(scope="module")
def shop(work) -> dict:
    from shoplake.datagen.synthetic import ShopParams, generate_shop

    return generate_shop(work / "landing", ShopParams(days=3, users=30, items=20, start=D1))


@pytest.fixture(scope="module")
def wheel(clusters) -> Path:
    cfg, _ = clusters
    return cluster.build_wheel(cfg)


def _env(cfg, work: Path) -> dict:
    env = cluster.submit_env(cfg)
    env.update(SHOPLAKE_LAKE_ROOT=f"file://{work / 'lake'}", SHOPLAKE_LANDING_ROOT=str(work / "landing"))
    return env


@pytest.fixture(scope="module")
def ingest_run(clusters, work, shop, wheel):
    """spark-submit jobs/ingest.py --env cluster on the standalone cluster, from an unrelated folder."""
    cfg, _ = clusters
    before = len((cluster.spark_master_info(cfg) or {}).get("completedapps", []))
    days = ["--from", D1.isoformat(), "--to", D3.isoformat()]
    # Tiny data: few shuffle partitions, as in the local test session (the command line wins over cluster.yaml).
    conf = {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"}
    argv = cluster.spark_submit_argv(cfg, "jobs/ingest.py", days, py_files=wheel, conf=conf)
    code, out = run_logged(argv, work / "logs" / "ingest.log", _env(cfg, work), work / "elsewhere", timeout=420)
    return code, out, before


def test_spark_submit_ingest_on_the_standalone_cluster(clusters, ingest_run, shop, work):
    cfg, _ = clusters
    code, out, apps_before = ingest_run
    assert code == 0, tail(out)
    reported = {m[1]: (int(m[2]), int(m[3])) for m in re.finditer(r"^bronze\.(\w+): v\d+, (\d+) rows, (\d+) quarantined$", out, re.M)}
    assert set(reported) == set(cfg.ingest.sources)
    for source, landing_rows in shop["rows"].items():
        rows, quarantined = reported[source]
        assert rows + quarantined == landing_rows, source
        table = DeltaTable(f"file://{work / 'lake' / 'bronze' / source}")
        assert table.to_pyarrow_table().num_rows == rows, source
    assert reported["orders"][0] > 0 and reported["events"][0] > 0
    # Spark's own Delta writer made the commits: the jars reached the driver and the executors through --packages.
    log = (work / "lake" / "bronze" / "orders" / "_delta_log" / "00000000000000000000.json").read_text().splitlines()
    commit = next(json.loads(line)["commitInfo"] for line in log if '"commitInfo"' in line)
    assert "Delta-Lake/" in commit.get("engineInfo", ""), commit
    # It ran as an application of the standalone master, not in local mode.
    info = cluster.spark_master_info(cfg)
    assert len(info["completedapps"]) == apps_before + 1


def test_spark_submit_build_features_on_the_standalone_cluster(clusters, ingest_run, wheel, work):
    cfg, _ = clusters
    assert ingest_run[0] == 0, "needs the ingest run"
    features_for = (D3 + dt.timedelta(days=1)).isoformat()
    conf = {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"}
    argv = cluster.spark_submit_argv(cfg, "jobs/build_features.py", ["--run-date", features_for], py_files=wheel, conf=conf)
    code, out = run_logged(argv, work / "logs" / "features.log", _env(cfg, work), work / "elsewhere", timeout=600)
    assert code == 0, tail(out)
    for name in ("silver/interactions", "gold/user_item_matrix", "gold/item_features", "gold/user_features"):
        table = DeltaTable(f"file://{work / 'lake' / name}").to_pyarrow_table()
        assert table.num_rows > 0, name
        # silver.interactions stores each fact once, known from the first run date that saw it; the gold tables are that date's snapshot.
        stamp = C.KNOWN_FROM if name == "silver/interactions" else C.RUN_DATE
        assert {d.isoformat() for d in table[stamp].to_pylist()} == {features_for}, name


def test_executors_import_the_shipped_package(clusters, wheel, work):
    cfg, state = clusters
    script = ROOT / "tests" / "cluster" / "spark_where_is_shoplake.py"
    # Wait for both executors before the tasks start, so that both workers take some.
    conf = {"spark.scheduler.minRegisteredResourcesRatio": "1.0", "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s"}
    argv = cluster.spark_submit_argv(cfg, script, py_files=wheel, conf=conf)
    code, out = run_logged(argv, work / "logs" / "where.log", _env(cfg, work), work / "elsewhere", timeout=300)
    assert code == 0, tail(out)
    where = json.loads(re.search(r"^WHERE (.*)$", out, re.M)[1])
    assert where["master"] == state.spark_master_url
    lib = str(ROOT / "lib")
    assert not where["driver"].startswith(lib)
    spark_work = Path(cfg.cluster.run_dir) / "spark-work"
    workers = set()
    for task in where["executors"]:
        path = Path(task["file"])
        assert path.is_relative_to(spark_work), task
        assert path.parts[-3:] == (cluster.py_files_archive(wheel).name, "shoplake", "__init__.py"), task
        workers.add(path.relative_to(spark_work).parts[0])
    assert workers == {"worker-0", "worker-1"}


def _ray_job(cfg, work: Path, name: str, entrypoint: list[str], timeout: float) -> tuple[dict, str]:
    submission_id = f"{name}-{int(time.time())}"
    env_vars = {"SHOPLAKE_LAKE_ROOT": f"file://{work / 'lake'}", "SHOPLAKE_LANDING_ROOT": str(work / "landing")}
    argv = cluster.ray_job_submit_argv(cfg, entrypoint, env_vars=env_vars, submission_id=submission_id)
    code, out = run_logged(argv, work / "logs" / f"{name}.log", cluster.submit_env(cfg), work / "elsewhere", timeout=timeout)
    info = cluster.ray_job_info(cfg, submission_id) or {}
    assert code == 0 and info.get("status") == "SUCCEEDED", f"{info.get('status')}: {info.get('message')}\n{tail(out)}"
    return info, out


def test_ray_job_runs_on_both_nodes_with_the_shipped_package(clusters, work):
    cfg, _ = clusters
    info, out = _ray_job(cfg, work, "probe", ["python", "tests/cluster/ray_probe.py", "--env", "cluster"], timeout=300)
    probe = json.loads(re.search(r"^PROBE (.*)$", out, re.M)[1])
    alive = {n["node_id"] for n in cluster.ray_alive_nodes(cfg)}
    assert len(probe["nodes"]) == 2 and set(probe["nodes"]) == alive
    assert {t["node"] for t in probe["tasks"]} == alive
    for task in probe["tasks"]:
        # py_modules shipped lib/shoplake into Ray's runtime resources; the checkout is not used.
        assert "runtime_resources" in task["shoplake"] and not task["shoplake"].startswith(str(ROOT / "lib")), task
    assert info["driver_node_id"] in alive


def test_ray_job_profiles_an_ingested_table(clusters, work, ingest_run):
    cfg, _ = clusters
    assert ingest_run[0] == 0, "needs the ingest run"
    entry = ["python", "ray_apps/profile_tables.py", "--env", "cluster", "--table", "bronze.orders"]
    _ray_job(cfg, work, "profile", entry, timeout=420)
    profiles = DeltaTable(f"file://{work / 'lake' / 'ops' / 'table_profiles'}").to_pyarrow_table()
    orders = profiles.filter(pc.equal(profiles[C.TABLE_NAME], "bronze.orders"))
    assert orders.num_rows > 0
    one_column = orders.filter(pc.equal(orders[C.COLUMN_NAME], orders[C.COLUMN_NAME][0]))
    bronze_rows = DeltaTable(f"file://{work / 'lake' / 'bronze' / 'orders'}").to_pyarrow_table().num_rows
    assert pc.sum(one_column[C.ROWS]).as_py() == bronze_rows


def _get(url: str):
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=5) as resp:
            return resp.status, resp.read()
    except OSError as exc:
        return None, str(exc).encode()


def test_serve_deploy_answers_health(clusters, work, tmp_path, ingest_run):
    config_file = ROOT / "ray_apps" / "serve_config.yaml"
    cfg, _ = clusters
    # The project's file, pointed at this cluster's Serve port and lake.
    config = yaml.safe_load(config_file.read_text())
    config["http_options"] = {**config.get("http_options", {}), "host": cfg.cluster.host, "port": cfg.cluster.serve_http_port}
    for app in config["applications"]:
        app.setdefault("args", {})["env"] = "cluster"
        env_vars = app.setdefault("runtime_env", {}).setdefault("env_vars", {})
        env_vars.update(SHOPLAKE_LAKE_ROOT=f"file://{work / 'lake'}", SHOPLAKE_LANDING_ROOT=str(work / "landing"))
    deploy_file = tmp_path / "serve_config.yaml"
    deploy_file.write_text(yaml.safe_dump(config))
    argv = [cluster.commands._tool("serve"), "deploy", str(deploy_file), "--address", cluster.ray_dashboard_url(cfg)]
    code, out = run_logged(argv, work / "logs" / "serve-deploy.log", cluster.submit_env(cfg), work / "elsewhere", timeout=120)
    assert code == 0, tail(out)
    url = f"http://{cfg.cluster.host}:{cfg.cluster.serve_http_port}/health"
    deadline = time.monotonic() + 150
    status, body = _get(url)
    while status != 200 and time.monotonic() < deadline:
        time.sleep(1)
        status, body = _get(url)
    assert status == 200, f"{url}: {body[-500:]!r}"
    health = json.loads(body)
    assert health["status"] == "ok" and health["env"] == "cluster"
    # The replicas read the lake the Spark job wrote.
    assert ingest_run[0] == 0, "needs the ingest run"
    status, body = _get(f"http://{cfg.cluster.host}:{cfg.cluster.serve_http_port}/lake/tables")
    assert status == 200
    tables = {t["table"]: t for t in json.loads(body)}
    orders = DeltaTable(f"file://{work / 'lake' / 'bronze' / 'orders'}")
    assert tables["bronze.orders"]["version"] == orders.version()
    assert tables["bronze.orders"]["rows"] == orders.to_pyarrow_table().num_rows
