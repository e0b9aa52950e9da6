"""A Spark worker dies in the middle of a lake write: the table ends whole, never half written.

The write goes through :class:`shoplake.lake.Lake` (tasks write Parquet files, the
driver commits once). One worker, with its executor and Python workers, is killed
with SIGKILL while both executors run tasks. Either Spark finishes the job on the
other worker and the table holds exactly the new rows in one new version, or the job
fails and the table stays at its previous version; a re-run then succeeds. The
killed worker is not restarted: ``down`` must still clean up.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from cluster_helpers import ROOT, cluster_config, run_logged, running_clusters, tail
from deltalake import DeltaTable, write_deltalake
from spark_write_rows import SPEC

from shoplake import cluster
from shoplake.cluster import processes

pytestmark = pytest.mark.cluster

ROWS = 1_000_000
PARTITIONS = 8
TASK_SECONDS = 2.0
PREVIOUS_ROWS = 100


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    cfg = cluster_config(tmp_path_factory.mktemp("cluster-failure") / "run")
    with running_clusters(cfg, ray=False):
        yield cfg


def _rows_and_ids(uri: str) -> tuple[int, int, int]:
    table = DeltaTable(uri)
    ids = table.to_pyarrow_table(columns=["id"])["id"]
    return table.version(), len(ids), pc.count_distinct(ids).as_py()


def _wait_for_markers(markers: Path, proc_done, timeout: float) -> list[str]:
    """Markers of tasks running on two different executors (two Python worker PIDs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not proc_done():
        names = sorted(p.name for p in markers.iterdir())
        if len({n.rsplit("-pid-", 1)[1] for n in names}) >= 2:
            return names
        time.sleep(0.1)
    return sorted(p.name for p in markers.iterdir())


def test_killed_worker_during_a_write_leaves_the_table_whole(spark_cluster, tmp_path):
    cfg = spark_cluster
    lake = tmp_path / "lake"
    uri = f"file://{lake / SPEC.layer / SPEC.name}"
    n = PREVIOUS_ROWS
    previous = pa.table({"id": list(range(n)), "task": [0] * n, "payload": ["old"] * n}, schema=SPEC.arrow_schema())
    write_deltalake(uri, previous)
    assert _rows_and_ids(uri) == (0, PREVIOUS_ROWS, PREVIOUS_ROWS)

    markers = tmp_path / "markers"
    markers.mkdir()
    env = cluster.submit_env(cfg)
    env["SHOPLAKE_LAKE_ROOT"] = f"file://{lake}"
    script = ROOT / "tests" / "cluster" / "spark_write_rows.py"
    args = ["--rows", str(ROWS), "--partitions", str(PARTITIONS), "--task-seconds", str(TASK_SECONDS), "--marker-dir", str(markers)]
    argv = cluster.spark_submit_argv(cfg, script, args, py_files=cluster.build_wheel(cfg))
    (tmp_path / "elsewhere").mkdir()

    log = tmp_path / "write-killed.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path / "elsewhere", start_new_session=True)
        try:
            started = _wait_for_markers(markers, lambda: proc.poll() is not None, timeout=300)
            assert proc.poll() is None, f"the write ended before a worker could be killed:\n{tail(log.read_text())}"
            assert len(started) >= 2, f"tasks never ran on two executors: {started}"
            victim = cluster.status(cfg).process("spark-worker-1")
            tree = cluster.process_tree(victim)
            assert len(tree) >= 3, f"worker, executor and Python workers expected: {tree}"
            processes._signal(tree, signal.SIGKILL)  # a crashed machine: no shutdown hooks
            code = proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                processes._signal({proc.pid}, signal.SIGKILL)
                proc.wait()
    out_text = log.read_text()
    assert not cluster.status(cfg).process("spark-worker-1").alive

    version, rows, distinct = _rows_and_ids(uri)
    if code == 0:
        # Spark ran the lost tasks again on the other worker: all rows, once, in one new version.
        assert f"WROTE ops.cluster_test_rows v1 {ROWS} rows" in out_text
        assert (version, rows, distinct) == (1, ROWS, ROWS)
        retried = [n for n in markers.iterdir() if "-attempt-0-" not in n.name]
        assert retried, "a task of the killed executor should have run again"
    else:
        # The job failed: nothing was committed.
        assert (version, rows, distinct) == (0, PREVIOUS_ROWS, PREVIOUS_ROWS), tail(out_text)

    # A re-run, on the worker that is left, writes the table once more.
    code, out_text = run_logged(argv, tmp_path / "write-rerun.log", env, tmp_path / "elsewhere", timeout=600)
    assert code == 0, tail(out_text)
    assert _rows_and_ids(uri) == (version + 1, ROWS, ROWS)
    info = cluster.spark_master_info(cfg)
    assert sum(1 for w in info["workers"] if w["state"] == "ALIVE") == 1
