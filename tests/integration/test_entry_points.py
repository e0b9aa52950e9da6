"""Entry points as a user runs them: spark-submit jobs/ingest.py and the shoplake CLI, as subprocesses."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

from shoplake.datagen.landing_writer import write_landing

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DAY = dt.date(2024, 4, 1)


def _landing(root: Path) -> None:
    orders = pa.table(
        {
            "order_id": ["o1", "o1", "o2"],
            "line_number": pa.array([1, 2, 1], pa.int32()),
            "user_id": ["u1", "u1", None],
            "item_id": ["i1", "i2", "i1"],
            "quantity": pa.array([1, 3, 2], pa.int32()),
            "unit_price": [2.0, -5.0, 2.0],
            "order_ts": pa.array([dt.datetime(2024, 4, 1, 9, tzinfo=dt.timezone.utc)] * 3),
            "status": ["placed", "placed", "cancelled"],
        }
    )
    write_landing(orders, root, "orders", DAY, "csv")


def _env() -> dict:
    env = dict(os.environ)
    env["PYSPARK_PYTHON"] = sys.executable
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    return env


def test_spark_submit_ingest(tmp_path, spark):
    from shoplake.config import load_config
    from shoplake.spark import delta_classes_available, submit_args

    _landing(tmp_path / "landing")
    # The jars as `shoplake nightly --print-commands` passes them, where this machine can fetch them.
    with_delta = delta_classes_available(spark)
    cmd = [
        str(BIN / "spark-submit"),
        "--master",
        "local[2]",
        "--conf",
        "spark.ui.enabled=false",
        *(submit_args(load_config("local")) if with_delta else []),
        str(ROOT / "jobs" / "ingest.py"),
        "--env",
        "local",
        "--set",
        f"lake.root={tmp_path}/lake",
        "--set",
        f"landing.root={tmp_path}/landing",
        "--set",
        "ingest.sources=[orders]",
        "--run-date",
        DAY.isoformat(),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bronze.orders: v0, 2 rows, 1 quarantined" in proc.stdout
    assert DeltaTable(str(tmp_path / "lake" / "bronze" / "orders")).to_pyarrow_table().num_rows == 2
    assert DeltaTable(str(tmp_path / "lake" / "quarantine" / "orders")).to_pyarrow_table().num_rows == 1
    # With the jars on the command line, Spark's own Delta writer made the commit (lake.engine auto).
    commit = DeltaTable(str(tmp_path / "lake" / "bronze" / "orders")).history(1)[0]
    assert ("Delta-Lake/" in str(commit.get("engineInfo", ""))) == with_delta, commit


def test_cli_ingest_and_lake_show(tmp_path):
    _landing(tmp_path / "landing")
    common = ["--set", f"lake.root={tmp_path}/lake", "--set", f"landing.root={tmp_path}/landing", "--set", "ingest.sources=[orders]"]
    shoplake = str(BIN / "shoplake")
    proc = subprocess.run(
        [shoplake, "ingest", "--run-date", DAY.isoformat(), *common], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run([shoplake, "lake", "show", *common], env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(row for row in proc.stdout.splitlines() if "bronze.orders" in row)
    assert [cell.strip() for cell in line.split("│")[2:5]] == ["0", "2", "1"]  # version, rows, quarantined


def test_cli_reports_bad_input_in_one_line(tmp_path):
    shoplake = str(BIN / "shoplake")
    proc = subprocess.run(
        [shoplake, "lake", "show", "--set", "lake.engin=delta-rs"], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown config key 'lake.engin'"
    (tmp_path / "landing" / "orders").mkdir(parents=True)
    proc = subprocess.run(
        [
            shoplake,
            "ingest",
            "--run-date",
            "2024-04-01",
            "--set",
            f"landing.root={tmp_path}/landing",
            "--set",
            f"lake.root={tmp_path}/lake",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "error: missing landing file for source 'orders' on 2024-04-01" in proc.stderr
    assert not (tmp_path / "lake").exists()


def _running(process) -> bool:
    """Alive and not a zombie; a process that ends while it is asked is not running."""
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_shoplake_serve_answers_through_haproxy_and_stops_on_sigterm(tmp_path):
    import signal
    import time

    import psutil

    from helpers import free_port, get_json

    port = free_port()
    sets = [f"lake.root={tmp_path}/lake", f"serve.port={port}", "serve.drain_s=1", "ray.num_cpus=2"]
    cmd = [str(BIN / "shoplake"), "serve", *(arg for key in sets for arg in ("--set", key))]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline, status = time.monotonic() + 180, None
        while status != 200 and proc.poll() is None and time.monotonic() < deadline:
            try:
                status, body = get_json(f"http://127.0.0.1:{port}/health")
            except (OSError, ValueError):  # not listening yet, or HAProxy's own 503 page before the replica is up
                time.sleep(1)
        assert status == 200, log.read_text()[-3000:]
        assert body["lake"] == f"{tmp_path}/lake"
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any(p.name() == "haproxy" for p in children), sorted({p.name() for p in children})
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, log.read_text()[-3000:]
        assert not [p for p in children if _running(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
