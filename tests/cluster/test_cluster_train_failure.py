"""A Ray worker node dies during training: the job still succeeds, resuming from the last checkpoint.

``ray_apps/train.py recommend`` is submitted with ``ray job submit`` to a 2-node Ray
cluster (head and one extra node, 1 CPU each) with two training workers of 0.5 CPU
placed SPREAD, so one runs on each node. Once a training worker is alive on the
extra node and a checkpoint is surely registered, that node (``ray start --block``, its raylet and
workers) is killed with SIGKILL. Ray Train restarts the worker group; both workers
now fit on the head, and the new attempt continues after the last checkpoint
instead of starting over. The killed node is not restarted: ``down`` must still
clean up.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pytest
from cluster_helpers import cluster_config, running_clusters, tail
from deltalake import write_deltalake

from shoplake import cluster
from shoplake import columns as C
from shoplake.cluster import processes
from shoplake.recommend.schemas import INTERACTIONS, ITEM_FEATURES, USER_ITEM_MATRIX

pytestmark = pytest.mark.cluster

RUN_DATE = dt.date(2024, 3, 1)
EPOCHS = 12
EPOCH_SLEEP_S = 3.0  # keeps the tiny run going ~40 s, long enough to kill a node in the middle
RUN_NAME = "node-killed"
HOLDOUT_DAYS = 7


def _write_lake(lake_root: Path) -> None:
    """Feature snapshots of RUN_DATE and its holdout cutoff, written with delta-rs to the tables' locations."""
    cutoff = RUN_DATE - dt.timedelta(days=HOLDOUT_DAYS)
    before = dt.datetime.combine(cutoff, dt.time(), dt.timezone.utc) - dt.timedelta(hours=12)
    after = dt.datetime.combine(cutoff, dt.time(), dt.timezone.utc) + dt.timedelta(hours=12)
    early = [(f"u{u}", f"i{i}", before) for u in range(40) for i in range(30) if (u + i) % 3 == 0]
    late = [(f"u{u}", f"i{(u * 7 + 1) % 30}", after) for u in range(40) if (u + (u * 7 + 1) % 30) % 3 != 0]
    interactions, matrix, items = [], [], []
    for day, rows in ((cutoff, early), (RUN_DATE, late)):
        interactions += [{C.USER_ID: u, C.ITEM_ID: i, C.EVENT_TYPE: "purchase", C.EVENT_TS: ts, C.SOURCE: "orders",
                          C.EVENT_DATE: ts.date(), C.KNOWN_FROM: day} for u, i, ts in rows]  # fmt: skip
    for day, rows in ((cutoff, early), (RUN_DATE, early + late)):
        for u, i, ts in rows:
            matrix.append({
                C.USER_ID: u, C.ITEM_ID: i, C.WEIGHT: 8.0, C.N_VIEWS: 0, C.N_CLICKS: 0, C.N_CARTS: 0, C.N_PURCHASES: 1,
                C.LAST_INTERACTION_TS: ts, C.RUN_DATE: day,
            })  # fmt: skip
        items += [{C.ITEM_ID: f"i{i}", C.TITLE: f"item {i}", C.TEXT: f"item {i}", C.POPULARITY: 0, C.N_PURCHASES_30D: 0,
                   C.FIRST_SEEN_TS: before, C.RUN_DATE: day} for i in range(30)]  # fmt: skip
    for spec, rows in ((INTERACTIONS, interactions), (USER_ITEM_MATRIX, matrix), (ITEM_FEATURES, items)):
        table = pa.Table.from_pylist(rows, schema=spec.arrow_schema())
        write_deltalake(f"file://{lake_root / spec.layer / spec.name}", table, partition_by=list(spec.partition_by))


def _train_workers(cfg) -> list[dict]:
    data = cluster.ray_dashboard_json(cfg, "/api/v0/actors?limit=1000") or {}
    try:
        actors = data["data"]["result"]["result"]
    except (KeyError, TypeError):
        return []
    return [a for a in actors if a.get("class_name") == "RayTrainWorker" and a.get("state") == "ALIVE"]


# A checkpoint folder on disk is not yet one the run can resume from: Ray Train registers
# epoch k's checkpoint once the controller has polled every rank's report of k. A rank
# puts its report of k+1 only after its report of k was taken, and rank 0 writes the
# folder of k+2 only after every rank started reporting k+2; so the folder of k+2 on disk
# means k is registered.
REGISTERED_LAG = 2


def _checkpoint_epochs(run_path: Path) -> list[int]:
    """Epochs of the checkpoints written so far (one being copied in may not be readable yet)."""
    epochs = []
    for meta in run_path.glob("checkpoint_*/meta.json"):
        try:
            epochs.append(json.loads(meta.read_text())["epoch"])
        except (OSError, ValueError, KeyError):
            pass
    return sorted(epochs)


def test_killed_ray_node_during_training_resumes_from_the_last_checkpoint(tmp_path):
    cfg = cluster_config(tmp_path / "run", "cluster.ray_head_cpus=1", "cluster.ray_worker_nodes=[1]")
    lake_root, runs_dir = tmp_path / "lake", tmp_path / "runs"
    _write_lake(lake_root)
    run_path = runs_dir / "ray_results" / f"{RUN_NAME}_mf_holdout"
    (tmp_path / "elsewhere").mkdir()
    settings = [
        f"runs_dir={runs_dir}",
        "ray.num_workers=2",
        "ray.cpus_per_worker=0.5",
        "training.placement_strategy=SPREAD",
        f"training.epochs={EPOCHS}",
        f"training.epoch_sleep_s={EPOCH_SLEEP_S}",
        "training.max_failures=3",
        "training.batch_size=64",
        "training.embedding_dim=8",
        # Only matrix factorization, trained once: the run under test is the holdout fit.
        "recommender.models=[mf]",
        "recommender.main_model=mf",
        "recommender.refit=false",
        f"recommender.holdout_days={HOLDOUT_DAYS}",
    ]
    entry = ["python", "ray_apps/train.py", "recommend", "--env", "cluster", "--name", RUN_NAME, "--no-register"]
    for s in settings:
        entry += ["--set", s]

    with running_clusters(cfg, spark=False):
        nodes = cluster.ray_alive_nodes(cfg)
        head = next(n["node_id"] for n in nodes if n.get("is_head_node"))
        victim_node = next(n["node_id"] for n in nodes if not n.get("is_head_node"))
        submission_id = f"train-{int(time.time())}"
        argv = cluster.ray_job_submit_argv(cfg, entry, env_vars={"SHOPLAKE_LAKE_ROOT": f"file://{lake_root}"}, submission_id=submission_id)
        log = tmp_path / "train.log"
        started = time.monotonic()
        with open(log, "w") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=cluster.submit_env(cfg), cwd=tmp_path / "elsewhere", start_new_session=True
            )
            try:
                # Wait for a checkpoint to resume from and a training worker on the node to kill.
                deadline, on_victim = time.monotonic() + 300, []
                while time.monotonic() < deadline and proc.poll() is None:
                    on_victim = [a for a in _train_workers(cfg) if a.get("node_id") == victim_node]
                    if on_victim and max(_checkpoint_epochs(run_path), default=-1) >= REGISTERED_LAG:
                        break
                    time.sleep(0.5)
                assert proc.poll() is None, f"the job ended before the node could be killed:\n{tail(log.read_text())}"
                assert on_victim and max(_checkpoint_epochs(run_path), default=-1) >= REGISTERED_LAG, (
                    f"no worker on {victim_node} with a registered checkpoint:\n{tail(log.read_text())}"
                )
                before_kill = _checkpoint_epochs(run_path)
                victim = cluster.status(cfg).process("ray-worker-0")
                tree = cluster.process_tree(victim)
                assert len(tree) >= 3, f"ray start, raylet and workers expected: {tree}"
                killed_at = time.monotonic() - started
                processes._signal(tree, signal.SIGKILL)  # a crashed machine: no drain, no shutdown hooks
                code = proc.wait(timeout=420)
            finally:
                if proc.poll() is None:
                    processes._signal({proc.pid}, signal.SIGKILL)
                    proc.wait()
        elapsed = time.monotonic() - started
        out_text = log.read_text(errors="replace")
        info = cluster.ray_job_info(cfg, submission_id) or {}
        print(f"node killed at {killed_at:.1f} s after submit (checkpoints of epochs {before_kill}); job done in {elapsed:.1f} s")
        assert not cluster.status(cfg).process("ray-worker-0").alive
        assert code == 0 and info.get("status") == "SUCCEEDED", f"{info.get('status')}: {info.get('message')}\n{tail(out_text)}"
        assert [n["node_id"] for n in cluster.ray_alive_nodes(cfg)] == [head]

    history = json.loads(re.search(r"^history mf: (.*)$", out_text, re.M)[1])
    assert [h["epoch"] for h in history] == list(range(EPOCHS)), history
    first_try = [h for h in history if h["resumed_from"] is None]
    resumed = [h for h in history if h["resumed_from"] is not None]
    assert first_try and resumed, "the run was never restarted"
    # The restart continued after the last checkpoint instead of starting over from epoch 0.
    resumed_from = resumed[0]["resumed_from"]
    assert resumed[0]["epoch"] == resumed_from + 1 == len(first_try)
    assert {h["resumed_from"] for h in resumed} == {resumed_from}
    assert resumed_from >= before_kill[-1] - REGISTERED_LAG >= 0
    # Before the kill one worker ran on each node; afterwards both ran on the head.
    assert all(sorted(h["nodes"]) == sorted([head, victim_node]) for h in first_try), first_try
    assert all(h["nodes"] == [head, head] for h in resumed), resumed
    # The run's metrics were written and its last checkpoint is the final epoch's.
    assert re.search(r"^ops\.model_metrics v0; bundle", out_text, re.M), tail(out_text)
    assert max(_checkpoint_epochs(run_path)) == EPOCHS - 1
