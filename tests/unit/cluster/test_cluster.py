"""Local test clusters: command lines from config, the process record, stopping exactly what was started."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from shoplake import cluster
from shoplake.cluster import ClusterError, ClusterState, ProcessRecord, launch, processes
from shoplake.config import load_config

PORTS = (
    "cluster.spark_master_port=27077",
    "cluster.spark_master_webui_port=28080",
    "cluster.spark_worker_webui_port=28181",
    "cluster.ray_head_port=26380",
    "cluster.ray_dashboard_port=28266",
    "cluster.ray_client_port=20002",
    "cluster.serve_http_port=28001",
)


@pytest.fixture
def ccfg(tmp_path):
    """A cluster config with its run dir under tmp_path and ports nothing else uses by default."""

    def make(*overrides: str):
        return load_config("local", [f"cluster.run_dir={tmp_path}/run", *PORTS, *overrides])

    return make


@pytest.fixture
def sleepers():
    """Start harmless ``sleep`` process groups; whatever is left is killed at the end."""
    started: list[subprocess.Popen] = []

    def start(*argv: str) -> subprocess.Popen:
        proc = subprocess.Popen(list(argv) or ["sleep", "60"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        try:
            proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _record(cfg, *procs: subprocess.Popen, role: str = "spark-worker", ticks=None) -> None:
    state = ClusterState(cfg.cluster.run_dir, "127.0.0.1", "2024-01-01T00:00:00+00:00")
    for i, proc in enumerate(procs):
        start = processes.start_time(proc.pid) if ticks is None else ticks
        state.processes.append(ProcessRecord(f"p{i}", role, list(proc.args), "x.log", proc.pid, proc.pid, start, {}))
    cluster.save_state(cfg, state)


def _wait_for_child(proc: subprocess.Popen) -> None:
    # `sh -c 'sleep & wait'` needs a moment to start its child.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(cluster.process_tree(ProcessRecord("x", "x", [], "", proc.pid, proc.pid))) < 2:
        time.sleep(0.05)


def test_spark_command_lines_come_from_config(ccfg):
    cfg = ccfg("cluster.spark_workers=3", "cluster.spark_worker_cores=2", "cluster.spark_worker_memory=1g")
    master = cluster.spark_master_command(cfg)
    assert Path(master[0]).name == "spark-class" and Path(master[0]).is_file()
    assert master[1:] == ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", "27077", "--webui-port", "28080"]
    for i in range(3):
        worker = cluster.spark_worker_command(cfg, i)
        assert worker[1:] == [
            "org.apache.spark.deploy.worker.Worker", "spark://127.0.0.1:27077",
            "--cores", "2", "--memory", "1g", "--host", "127.0.0.1",
            "--webui-port", str(28181 + i), "--work-dir", f"{cfg.cluster.run_dir}/spark-work/worker-{i}",
        ]  # fmt: skip


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_ray_command_lines_come_from_config(ccfg):
    cfg = ccfg("cluster.ray_head_cpus=2", "cluster.ray_worker_nodes=[1, 3]")
    head = cluster.ray_head_command(cfg, "/tmp/r", {"node_manager": 40001, "dashboard_agent_listen": 40002})
    assert Path(head[0]).name == "ray" and head[1:4] == ["start", "--head", "--block"]
    expected = {
        "--port": "26380", "--num-cpus": "2", "--node-ip-address": "127.0.0.1", "--dashboard-host": "127.0.0.1",
        "--dashboard-port": "28266", "--ray-client-server-port": "20002", "--include-dashboard": "true", "--temp-dir": "/tmp/r",
        "--node-manager-port": "40001", "--dashboard-agent-listen-port": "40002",
    }  # fmt: skip
    assert {k: _flag(head, k) for k in expected} == expected
    for i, cpus in enumerate(("1", "3")):
        worker = cluster.ray_worker_command(cfg, i, "/tmp/r", {"node_manager": 40010 + i})
        assert "--head" not in worker and worker[1:3] == ["start", "--block"]
        assert _flag(worker, "--address") == "127.0.0.1:26380"
        assert _flag(worker, "--num-cpus") == cpus
        assert _flag(worker, "--node-manager-port") == str(40010 + i)


def test_ray_needs_whole_cpus(ccfg):
    with pytest.raises(ClusterError, match=r"cluster.ray_worker_nodes\[0\].*whole number"):
        cluster.ray_worker_command(ccfg("cluster.ray_worker_nodes=[0.5]"), 0, "/tmp/r")


def test_ray_temp_dir_stays_short_enough_for_unix_sockets(tmp_path):
    assert cluster.ray_temp_dir("/srv/run") == Path("/srv/run/ray")
    long_dir = tmp_path / ("x" * 80)
    fallback = cluster.ray_temp_dir(long_dir)
    assert fallback.parent == Path(tempfile.gettempdir()) and fallback.name.startswith("shoplake-ray-")
    assert fallback == cluster.ray_temp_dir(long_dir)  # stable: the same run dir gets the same folder


def test_spark_submit_argv_ships_the_package_as_a_zip(ccfg, tmp_path):
    cfg = ccfg("cluster.spark_workers=2", "cluster.spark_worker_cores=1", "cluster.spark_worker_memory=2g")
    wheel = tmp_path / "shoplake-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    argv = cluster.spark_submit_argv(cfg, "ingest", ["--from", "2024-01-01"], py_files=wheel, conf={"spark.ui.enabled": "false"})
    assert Path(argv[0]).name == "spark-submit"
    assert argv[1:3] == ["--master", "spark://127.0.0.1:27077"]
    assert _flag(argv, "--py-files") == str(wheel.with_suffix(".zip")) and wheel.with_suffix(".zip").is_file()
    confs = {argv[i + 1] for i, a in enumerate(argv) if a == "--conf"}
    assert {"spark.executor.cores=1", "spark.cores.max=2", "spark.executor.memory=2048m", "spark.ui.enabled=false"} <= confs
    assert argv[-5:] == [f"{cfg.project_root}/jobs/ingest.py", "--env", "cluster", "--from", "2024-01-01"]
    with pytest.raises(ClusterError, match="not found"):
        cluster.spark_submit_argv(cfg, "jobs/nope.py")


def test_submit_env_points_at_the_clusters(ccfg):
    cfg = ccfg()
    env = cluster.submit_env(cfg, base={"PATH": "/usr/bin", "PYSPARK_GATEWAY_PORT": "1"})
    assert env["SPARK_MASTER_URL"] == "spark://127.0.0.1:27077"
    assert env["RAY_ADDRESS"] == "http://127.0.0.1:28266"
    assert env["PYSPARK_PYTHON"] == sys.executable and env["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert env["SHOPLAKE_CONF_DIR"] == cfg.conf_dir == f"{cfg.project_root}/lib/shoplake/conf"
    assert "PYSPARK_GATEWAY_PORT" not in env and "SHOPLAKE_LAKE_ROOT" not in env


def test_the_ray_nodes_get_the_configured_serve_ingress(ccfg):
    from shoplake.ray_runtime import DRAIN_ENV, HAPROXY_ENV

    assert {k: launch._env(ccfg())[k] for k in (HAPROXY_ENV, DRAIN_ENV)} == {HAPROXY_ENV: "1", DRAIN_ENV: "30"}
    env = launch._env(ccfg("serve.ingress=proxy", "serve.drain_s=2.5"))
    assert {k: env[k] for k in (HAPROXY_ENV, DRAIN_ENV)} == {HAPROXY_ENV: "0", DRAIN_ENV: "2.5"}


def test_ray_job_submit_argv(ccfg):
    cfg = ccfg()
    argv = cluster.ray_job_submit_argv(cfg, ["python", "x.py"], env_vars={"A": "1"}, submission_id="job-1")
    assert argv[1:5] == ["job", "submit", "--address", "http://127.0.0.1:28266"]
    runtime_env = json.loads(_flag(argv, "--runtime-env-json"))
    assert runtime_env == {"working_dir": cfg.project_root, "py_modules": [f"{cfg.project_root}/lib/shoplake"], "env_vars": {"A": "1"}}
    assert _flag(argv, "--submission-id") == "job-1" and argv[-3:] == ["--", "python", "x.py"]


def test_ports_configured_twice_or_in_rays_worker_range_are_refused(ccfg):
    with pytest.raises(ClusterError, match="configured twice.*cluster.spark_master_webui_port.*cluster.ray_dashboard_port"):
        cluster.validate_ports(ccfg("cluster.ray_dashboard_port=28080").cluster)
    with pytest.raises(ClusterError, match="cluster.ray_head_port.*worker port range"):
        cluster.validate_ports(ccfg("cluster.ray_head_port=16379").cluster)
    cluster.validate_ports(ccfg("cluster.ray_head_port=16379").cluster, ray=False)  # Spark alone does not care


def test_a_taken_port_is_named_and_nothing_starts(ccfg):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert cluster.port_in_use(port)
        cfg = ccfg(f"cluster.spark_master_port={port}")
        with pytest.raises(ClusterError, match=rf"port {port} \(cluster.spark_master_port\) is already in use"):
            cluster.up(cfg)
    assert not cluster.port_in_use(port)
    assert not cluster.state_path(cfg).exists()


def test_a_process_that_dies_at_start_is_reported_with_its_log(ccfg, monkeypatch):
    cfg = ccfg()
    monkeypatch.setattr(launch, "spark_master_command", lambda cfg: ["sh", "-c", "echo cannot bind; exit 3"])
    with pytest.raises(ClusterError, match=r"spark-master exited \(code 3\) while starting; see .*spark-master.log:\n +cannot bind"):
        cluster.up(cfg, ray=False, timeout=30)
    assert not cluster.state_path(cfg).exists()


def test_a_start_that_times_out_stops_what_it_started(ccfg, monkeypatch):
    cfg = ccfg()
    monkeypatch.setattr(launch, "spark_master_command", lambda cfg: ["sleep", "60"])
    expected = (
        r"timed out after 1 s waiting for the Spark master \(nothing accepts connections on 127.0.0.1:27077\); see .*spark-master.log"
    )
    with pytest.raises(ClusterError, match=expected):
        cluster.up(cfg, ray=False, timeout=1)
    assert not cluster.state_path(cfg).exists()
    assert not any(cluster.pid_alive(pid) for pid in processes._CHILDREN if processes._CHILDREN[pid].args == ["sleep", "60"])


def test_down_without_a_record_is_a_no_op(ccfg):
    cfg = ccfg()
    assert cluster.status(cfg) is None
    assert cluster.down(cfg) == {}
    assert cluster.down(cfg) == {}


def test_down_stops_exactly_the_recorded_processes(ccfg, sleepers):
    cfg = ccfg()
    recorded = sleepers("sh", "-c", "sleep 60 & wait")  # a group with a child, like a worker and its executor
    unrelated = sleepers()
    _wait_for_child(recorded)
    group = cluster.process_tree(ProcessRecord("x", "x", [], "", recorded.pid, recorded.pid))
    assert len(group) == 2
    _record(cfg, recorded)
    state = cluster.status(cfg)
    assert state.running and state.processes[0].alive

    assert cluster.down(cfg, grace=5) == {"p0": "stopped"}
    assert not any(cluster.pid_alive(p) for p in group)
    assert cluster.pid_alive(unrelated.pid)
    assert cluster.status(cfg) is None


def test_down_kills_what_ignores_sigterm(ccfg, sleepers):
    cfg = ccfg()
    stubborn = sleepers("sh", "-c", "trap '' TERM; sleep 60 & wait")
    _wait_for_child(stubborn)
    _record(cfg, stubborn)
    assert cluster.down(cfg, grace=0.5) == {"p0": "killed"}
    assert not cluster.pid_alive(stubborn.pid)


def test_down_copes_with_processes_that_already_died(ccfg, sleepers):
    cfg = ccfg()
    dead = sleepers("true")
    dead.wait()
    alive = sleepers()
    _record(cfg, dead, alive)
    assert cluster.down(cfg, grace=5) == {"p0": "not running", "p1": "stopped"}
    assert not cluster.pid_alive(alive.pid)


def test_a_reused_pid_is_left_alone(ccfg, sleepers):
    cfg = ccfg()
    stranger = sleepers()
    _record(cfg, stranger, ticks=1)  # same PID, another start time: not the process we started
    assert cluster.status(cfg).processes[0].alive is False
    assert cluster.down(cfg, grace=1) == {"p0": "not running"}
    assert cluster.pid_alive(stranger.pid)


def test_up_refuses_while_the_recorded_cluster_runs(ccfg, sleepers):
    cfg = ccfg()
    _record(cfg, sleepers(), role="spark-master")
    with pytest.raises(ClusterError, match="still running: p0"):
        cluster.up(cfg)
    assert cluster.down(cfg, grace=5) == {"p0": "stopped"}


def test_build_wheel_ships_an_importable_package(ccfg):
    cfg = ccfg()
    wheel = cluster.build_wheel(cfg)
    assert wheel.parent == Path(cfg.cluster.run_dir) / "dist"
    archive = cluster.py_files_archive(wheel)
    assert archive.suffix == ".zip"
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
    assert {
        "shoplake/__init__.py",
        "shoplake/cluster/jobs.py",
        "shoplake/config/__init__.py",
        "shoplake/config/ads.py",
        "shoplake/conf/base.yaml",
    } <= names
    assert not any("__pycache__" in n for n in names)


def test_cli_cluster_status_and_down_without_a_cluster(tmp_path, capsys):
    from shoplake.cli import build_parser, run

    args = build_parser().parse_args(["cluster", "up", "--only", "spark", "--set", "cluster.spark_workers=1"])
    assert (args.command, args.cluster_command, args.only, args.overrides) == ("cluster", "up", "spark", ["cluster.spark_workers=1"])
    assert run(["cluster", "status", "--set", f"cluster.run_dir={tmp_path}/run"]) == 0
    assert run(["cluster", "down", "--set", f"cluster.run_dir={tmp_path}/run"]) == 0
