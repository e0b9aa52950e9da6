"""Starting and stopping the local clusters, and waiting until they are ready."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from shoplake.cluster.commands import (
    _RAY_DRAIN_TIMEOUT_S,
    RAY_NODE_PORTS,
    _venv_bin,
    check_ports_free,
    configured_ports,
    free_ports,
    ray_dashboard_url,
    ray_gcs_address,
    ray_head_command,
    ray_temp_dir,
    ray_token,
    ray_token_path,
    ray_worker_command,
    spark_home,
    spark_master_command,
    spark_master_ui,
    spark_master_url,
    spark_worker_command,
)
from shoplake.cluster.processes import _CHILDREN, ROLES, ProcessRecord, is_ours, pid_alive, start_time, stop_processes
from shoplake.cluster.state import ClusterError, ClusterState, load_state, save_state, state_path
from shoplake.config import Config
from shoplake.ray_runtime import serve_environment

log = logging.getLogger(__name__)


_POLL_S = 0.5


def status(cfg: Config) -> ClusterState | None:
    """The recorded cluster with each process's ``alive`` filled in, or None."""
    state = load_state(cfg)
    if state is None:
        return None
    for rec in state.processes:
        rec.alive = is_ours(rec)
    return state


def down(cfg: Config, grace: float = 20.0) -> dict[str, str]:
    """Stop exactly the processes :func:`up` recorded and forget them.

    Safe when nothing runs or some processes already died. Ray's extra nodes stop
    first (they drain through the head), then the head; Spark's workers, then its
    master.

    Args:
        cfg: Configuration; ``cfg.cluster.run_dir`` holds the record.
        grace: Seconds each step waits after SIGTERM before it sends SIGKILL.

    Returns:
        ``process name -> outcome``; empty when nothing was recorded.
    """
    state = load_state(cfg)
    if state is None:
        log.info("no cluster recorded in %s", cfg.cluster.run_dir)
        return {}
    outcome: dict[str, str] = {}
    for roles in (("ray-worker", "spark-worker"), ("ray-head", "spark-master")):
        step = [p for p in state.processes if p.role in roles]
        if step:
            outcome.update(stop_processes(step, grace))
    unknown = [p for p in state.processes if p.role not in ROLES]
    if unknown:
        outcome.update(stop_processes(unknown, grace))
    for name, what in outcome.items():
        log.info("%s: %s", name, what)
    stuck = {n: w for n, w in outcome.items() if w.startswith("still running")}
    if stuck:
        raise ClusterError(f"could not stop {stuck}; {state_path(cfg)} is kept")
    state_path(cfg).unlink(missing_ok=True)
    return outcome


def _env(cfg: Config) -> dict[str, str]:
    """Environment of every cluster process."""
    cc = cfg.cluster
    run_dir = Path(cc.run_dir)
    env = dict(os.environ)
    for key in ("RAY_ADDRESS", "PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "SPARK_MASTER_URL"):
        env.pop(key, None)
    env["PATH"] = os.pathsep.join([str(_venv_bin()), env.get("PATH", "")])
    env.update(
        SPARK_HOME=str(spark_home()),
        SPARK_LOCAL_IP=cc.host,
        PYSPARK_PYTHON=sys.executable,
        SPARK_LOG_DIR=str(run_dir / "logs"),
        SPARK_PID_DIR=str(run_dir / "pids"),
        SPARK_LOCAL_DIRS=str(run_dir / "spark-local"),
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(ray_token_path(cfg)),
        RAY_USAGE_STATS_ENABLED="0",
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=env.get("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", _RAY_DRAIN_TIMEOUT_S),
    )
    env.update(serve_environment(cfg))
    return env


def _launch(cfg: Config, state: ClusterState, name: str, role: str, argv: list[str], env: dict, ports: dict[str, int]) -> ProcessRecord:
    run_dir = Path(cfg.cluster.run_dir)
    log_path = run_dir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as out:
        # A session of its own: the process and its children form one group that down() can stop,
        # and a Ctrl-C in the terminal that ran `cluster up` does not reach them.
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=run_dir, start_new_session=True
        )
    _CHILDREN[proc.pid] = proc
    rec = ProcessRecord(name, role, argv, str(log_path), proc.pid, proc.pid, start_time(proc.pid), ports)
    state.processes.append(rec)
    save_state(cfg, state)
    log.info("started %s (pid %d), log %s", name, proc.pid, log_path)
    return rec


def _log_tail(path: str, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def _check_running(recs: list[ProcessRecord]) -> None:
    for rec in recs:
        proc = _CHILDREN.get(rec.pid)
        code = proc.poll() if proc is not None else (None if pid_alive(rec.pid) else "?")
        if code is not None:
            raise ClusterError(f"{rec.name} exited (code {code}) while starting; see {rec.log}:\n{_log_tail(rec.log)}")


def _wait(what: str, ready, recs: list[ProcessRecord], deadline: float, timeout: float) -> None:
    """Poll ``ready()`` (``(ok, note)``) until ok; fail when a process exits or time runs out."""
    last_note = ""
    while True:
        _check_running(recs)
        ok, note = ready()
        if ok:
            return
        last_note = note or last_note
        if time.monotonic() > deadline:
            logs = ", ".join(r.log for r in recs)
            note = f" ({last_note})" if last_note else ""
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}{note}; see {logs}:\n{_log_tail(recs[-1].log)}")
        time.sleep(_POLL_S)


# The clusters are local: an HTTP proxy from the environment must not be asked for them.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(url: str, token: str | None = None, timeout: float = 3.0):
    """GET ``url`` (no proxy) and parse JSON; None when it does not answer or is not JSON."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with _DIRECT.open(req, timeout=timeout) as resp:
            return json.loads(resp.read().decode() or "null")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _tcp_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def spark_master_info(cfg: Config):
    """The master UI's JSON (``/json/``): workers, apps, status; None when it does not answer."""
    return http_json(f"{spark_master_ui(cfg)}/json/")


def _spark_master_ready(cfg: Config) -> tuple[bool, str]:
    cc = cfg.cluster
    if not _tcp_open(cc.host, cc.spark_master_port):
        return False, f"nothing accepts connections on {cc.host}:{cc.spark_master_port}"
    info = spark_master_info(cfg)
    if not info or info.get("status") != "ALIVE":
        return False, f"master UI {spark_master_ui(cfg)}/json/ does not report ALIVE"
    return True, ""


def _alive_spark_workers(cfg: Config) -> int:
    info = spark_master_info(cfg) or {}
    cc = cfg.cluster
    ours = {f"http://{cc.host}:{cc.spark_worker_webui_port + i}" for i in range(cc.spark_workers)}
    return sum(1 for w in info.get("workers", []) if w.get("state") == "ALIVE" and w.get("webuiaddress") in ours)


def ray_dashboard_json(cfg: Config, path: str, timeout: float = 5.0):
    """GET a dashboard API path (the state API: ``/api/v0/nodes``, ``/api/v0/actors``) with the cluster's token."""
    return http_json(f"{ray_dashboard_url(cfg)}{path}", ray_token(cfg), timeout)


def ray_alive_nodes(cfg: Config) -> list[dict]:
    """Alive nodes of the Ray cluster (the dashboard's state API); empty when it does not answer."""
    data = ray_dashboard_json(cfg, "/api/v0/nodes?limit=1000") or {}
    try:
        nodes = data["data"]["result"]["result"]
    except (KeyError, TypeError):
        return []
    return [n for n in nodes if n.get("state") == "ALIVE"]


def _ray_jobs_answer(cfg: Config) -> tuple[bool, str]:
    """Whether Ray's job API on the dashboard answers (``(ok, why not)``)."""
    from shoplake.cluster.jobs import ray_jobs

    try:
        ray_jobs(cfg)
    except (ConnectionError, RuntimeError, OSError) as exc:
        return False, f"the job API of dashboard {ray_dashboard_url(cfg)} does not answer ({type(exc).__name__})"
    return True, ""


def _write_token(cfg: Config) -> None:
    path = ray_token_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))


def up(cfg: Config, spark: bool = True, ray: bool = True, timeout: float = 180.0) -> ClusterState:
    """Start the local Spark standalone and Ray clusters and wait until they are ready.

    Spark is ready when its master accepts connections and lists all workers ALIVE;
    Ray when its dashboard answers and ``1 + len(cluster.ray_worker_nodes)`` nodes
    are alive. If anything fails, what was started is stopped again.

    Args:
        cfg: Configuration; ``cfg.cluster`` gives host, ports, sizes and ``run_dir``.
        spark: Start the Spark cluster.
        ray: Start the Ray cluster.
        timeout: Seconds to wait for everything to be ready.

    Returns:
        The recorded state (also in ``<run_dir>/cluster.json``).

    Raises:
        ClusterError: A cluster recorded in ``run_dir`` still runs, a port is taken,
            or a process exits or is not ready in time (the message names its log file).
    """
    if not (spark or ray):
        raise ClusterError("nothing to start: give spark, ray or both")
    cc = cfg.cluster
    run_dir = Path(cc.run_dir)
    previous = status(cfg)
    if previous is not None:
        if previous.running:
            alive = ", ".join(f"{p.name} (pid {p.pid})" for p in previous.processes if p.alive)
            raise ClusterError(f"a cluster recorded in {state_path(cfg)} is still running: {alive}; run `shoplake cluster down` first")
        log.warning("forgetting the stale record of a stopped cluster in %s", state_path(cfg))
        down(cfg)
    check_ports_free(cfg, spark, ray)
    run_dir.mkdir(parents=True, exist_ok=True)
    env = _env(cfg)
    state = ClusterState(str(run_dir), cc.host, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    try:
        master = head = None
        if spark:
            state.spark_master_url, state.spark_master_ui = spark_master_url(cfg), spark_master_ui(cfg)
            master = _launch(
                cfg, state, "spark-master", "spark-master", spark_master_command(cfg), env,
                {"master": cc.spark_master_port, "webui": cc.spark_master_webui_port},
            )  # fmt: skip
        if ray:
            temp_dir = ray_temp_dir(run_dir)
            temp_dir.mkdir(parents=True, exist_ok=True)
            _write_token(cfg)
            taken = set(configured_ports(cc).values())
            node_ports = dict(zip(RAY_NODE_PORTS, free_ports(len(RAY_NODE_PORTS), cc.host, taken)))
            state.ray_address, state.ray_dashboard_url = ray_gcs_address(cfg), ray_dashboard_url(cfg)
            state.ray_client_url = f"ray://{cc.host}:{cc.ray_client_port}"
            state.ray_temp_dir, state.ray_auth_token_path = str(temp_dir), str(ray_token_path(cfg))
            ports = {"gcs": cc.ray_head_port, "dashboard": cc.ray_dashboard_port, "client": cc.ray_client_port, **node_ports}
            head = _launch(cfg, state, "ray-head", "ray-head", ray_head_command(cfg, temp_dir, node_ports), env, ports)
        spark_workers: list[ProcessRecord] = []
        if master is not None:
            _wait("the Spark master", lambda: _spark_master_ready(cfg), [master], deadline, timeout)
            for i in range(cc.spark_workers):
                ports = {"webui": cc.spark_worker_webui_port + i}
                spark_workers.append(_launch(cfg, state, f"spark-worker-{i}", "spark-worker", spark_worker_command(cfg, i), env, ports))
        ray_workers: list[ProcessRecord] = []
        if head is not None:
            _wait("the Ray head", lambda: _ray_jobs_answer(cfg), [head], deadline, timeout)
            taken |= set(node_ports.values())
            for i in range(len(cc.ray_worker_nodes)):
                node_ports_i = dict(zip(RAY_NODE_PORTS, free_ports(len(RAY_NODE_PORTS), cc.host, taken)))
                taken |= set(node_ports_i.values())
                argv = ray_worker_command(cfg, i, temp_dir, node_ports_i)
                ray_workers.append(_launch(cfg, state, f"ray-worker-{i}", "ray-worker", argv, env, node_ports_i))
        if master is not None:
            want = cc.spark_workers
            _wait(
                f"{want} Spark workers to register",
                lambda: ((n := _alive_spark_workers(cfg)) == want, f"{n} of {want} ALIVE"),
                [master, *spark_workers], deadline, timeout,
            )  # fmt: skip
            log.info("Spark master %s with %d workers (UI %s)", state.spark_master_url, want, state.spark_master_ui)
        if head is not None:
            want = 1 + len(cc.ray_worker_nodes)
            _wait(
                f"{want} Ray nodes to join",
                lambda: ((n := len(ray_alive_nodes(cfg))) == want, f"{n} of {want} alive"),
                [head, *ray_workers], deadline, timeout,
            )  # fmt: skip
            log.info("Ray cluster %s with %d nodes (dashboard %s)", state.ray_address, want, state.ray_dashboard_url)
    except BaseException:
        log.error("cluster start failed; stopping what was started")
        try:
            down(cfg)
        except Exception:  # noqa: BLE001 - report the original failure
            log.exception("could not stop everything; see %s", state_path(cfg))
        raise
    log.info("clusters up in %.1f s; record in %s", time.monotonic() - started, state_path(cfg))
    return status(cfg) or state
