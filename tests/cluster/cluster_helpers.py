"""Helpers of the cluster tests: a config with free ports, clusters that always come down, logged subprocesses."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from shoplake import cluster
from shoplake.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]


def _free_run(count: int) -> int:
    """The first of ``count`` consecutive free ports (Spark workers' UI ports count up)."""
    for _ in range(100):
        (first,) = cluster.free_ports(1)
        if first + count < 65536 and not any(cluster.port_in_use(first + i) for i in range(count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports found")


def cluster_config(run_dir: Path, *overrides: str) -> Config:
    """A cluster config with its run dir under ``run_dir`` and ports that are free now."""
    master, master_ui, head, dashboard, client, serve = cluster.free_ports(6)
    workers_ui = _free_run(4)
    return load_config(
        "local",
        [
            f"cluster.run_dir={run_dir}",
            f"cluster.spark_master_port={master}",
            f"cluster.spark_master_webui_port={master_ui}",
            f"cluster.spark_worker_webui_port={workers_ui}",
            f"cluster.ray_head_port={head}",
            f"cluster.ray_dashboard_port={dashboard}",
            f"cluster.ray_client_port={client}",
            f"cluster.serve_http_port={serve}",
            "cluster.spark_workers=2",
            "cluster.spark_worker_cores=1",
            "cluster.ray_head_cpus=1",
            "cluster.ray_worker_nodes=[1]",
            *overrides,
        ],
    )


@contextlib.contextmanager
def running_clusters(cfg: Config, spark: bool = True, ray: bool = True) -> Iterator[cluster.ClusterState]:
    """Bring the clusters up and always down again, then check that nothing they started is left."""
    state = None
    try:
        state = cluster.up(cfg, spark=spark, ray=ray, timeout=300)
        yield state
    finally:
        recorded = cluster.load_state(cfg)
        cluster.down(cfg)
        if recorded is not None:
            left = {p.name: cluster.process_tree(p) for p in recorded.processes}
            assert not any(left.values()), f"processes left after down: {left}"
            temp = Path(recorded.ray_temp_dir or cfg.cluster.run_dir)
            if not temp.is_relative_to(cfg.cluster.run_dir):
                shutil.rmtree(temp, ignore_errors=True)  # a short /tmp folder used instead of one under run_dir


def run_logged(argv: list[str], log: Path, env: dict, cwd: Path, timeout: float) -> tuple[int, str]:
    """Run a command in its own process group, output to ``log``; kill the whole group on timeout."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = -9
    text = log.read_text(errors="replace")
    print(f"{argv[:3]}... exit {code} in {time.monotonic() - started:.1f}s (log {log})")
    return code, text


def tail(text: str, chars: int = 4000) -> str:
    return text[-chars:]
