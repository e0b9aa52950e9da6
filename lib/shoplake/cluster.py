"""Local test clusters on one host: a Spark standalone cluster and a multi-node Ray cluster.

:func:`up` starts, on ``cfg.cluster.host`` (127.0.0.1), a Spark standalone master with
``cluster.spark_workers`` workers and a Ray head with one extra Ray node per entry of
``cluster.ray_worker_nodes``, each as its own process group with its output in
``<run_dir>/logs/<name>.log``, and records them in ``<run_dir>/cluster.json``.
:func:`down` stops exactly what was recorded (never ``ray stop`` or a kill by process
name, so other Spark or Ray processes on the machine are left alone), and
:func:`status` says what is recorded and what still runs.

Jobs reach these clusters the way they reach real ones: ``spark-submit --master
spark://...`` with the package shipped as ``--py-files`` (:func:`build_wheel`,
:func:`spark_submit_argv`) and ``ray job submit`` to the dashboard
(:func:`ray_job_submit_argv`); :func:`submit_env` is the environment for both.

The Ray cluster uses token authentication with its own token in
``<run_dir>/ray-auth-token``; clients find it through ``RAY_AUTH_TOKEN_PATH``
(:func:`submit_env`). Ray registers its nodes under the host's network address even
when told 127.0.0.1; every port it is given still listens there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shoplake.config import ClusterConfig, Config

log = logging.getLogger(__name__)

STATE_FILE = "cluster.json"
RAY_TOKEN_FILE = "ray-auth-token"
#: Ray's default ``--min-worker-port``/``--max-worker-port``: Ray refuses other ports in it.
RAY_WORKER_PORT_RANGE = (10002, 19999)
#: Roles of the recorded processes, in start order.
ROLES = ("spark-master", "spark-worker", "ray-head", "ray-worker")
#: Agent ports each Ray node gets; chosen free at start so that several nodes share a host.
RAY_NODE_PORTS = (
    "node_manager",
    "object_manager",
    "metrics_export",
    "dashboard_agent_listen",
    "dashboard_agent_grpc",
    "runtime_env_agent",
)
# A Unix socket path holds at most 107 bytes; Ray puts its sockets at
# <temp_dir>/session_<date>_<time>_<usec>_<pid>/sockets/<name>.
_UNIX_SOCKET_MAX = 107
_RAY_SOCKET_TAIL = len("/session_2024-01-01_00-00-00_000000_4194304/sockets/dash_MetricsHead.99")
# Ray nodes drain on SIGTERM (so Serve can move replicas); a local test cluster stops sooner.
_RAY_DRAIN_TIMEOUT_S = "5"
_POLL_S = 0.5


class ClusterError(RuntimeError):
    """A local cluster cannot start or be reached; the message names the port or log file."""


@dataclass
class ProcessRecord:
    """One process started by :func:`up`.

    Attributes:
        name: Unique name, also the log file's stem (``spark-worker-0``).
        role: One of :data:`ROLES`.
        argv: The command line.
        log: Path of the file holding its stdout and stderr.
        pid: Process id; the process leads its own process group (``pgid == pid``).
        pgid: Process-group id: its children (executors, raylets) share it.
        start_ticks: Start time from ``/proc/<pid>/stat``; tells this process from a
            later one that got the same PID.
        ports: Ports it listens on, by name.
        alive: Filled in by :func:`status`.
    """

    name: str
    role: str
    argv: list[str]
    log: str
    pid: int = 0
    pgid: int = 0
    start_ticks: int | None = None
    ports: dict[str, int] = field(default_factory=dict)
    alive: bool | None = None


@dataclass
class ClusterState:
    """What :func:`up` recorded in ``<run_dir>/cluster.json``."""

    run_dir: str
    host: str
    started_at: str
    processes: list[ProcessRecord] = field(default_factory=list)
    spark_master_url: str | None = None
    spark_master_ui: str | None = None
    ray_address: str | None = None
    ray_dashboard_url: str | None = None
    ray_client_url: str | None = None
    ray_temp_dir: str | None = None
    ray_auth_token_path: str | None = None

    @property
    def running(self) -> bool:
        """True when any recorded process is still alive."""
        return any(_is_ours(p) for p in self.processes)

    def process(self, name: str) -> ProcessRecord:
        for p in self.processes:
            if p.name == name:
                return p
        raise KeyError(f"no process {name!r} recorded; recorded: {', '.join(p.name for p in self.processes)}")

    def to_json(self) -> str:
        data = asdict(self)
        for p in data["processes"]:
            p.pop("alive", None)
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ClusterState:
        data = json.loads(text)
        procs = [ProcessRecord(**p) for p in data.pop("processes", [])]
        return cls(processes=procs, **data)


# --------------------------------------------------------------------------- paths


def state_path(cfg: Config) -> Path:
    """``<run_dir>/cluster.json``."""
    return Path(cfg.cluster.run_dir) / STATE_FILE


def spark_home() -> Path:
    """The installed ``pyspark`` package folder, which is a complete Spark distribution."""
    try:
        from pyspark.find_spark_home import _find_spark_home

        return Path(_find_spark_home())
    except Exception:  # noqa: BLE001 - fall back to the package folder itself
        import pyspark

        return Path(pyspark.__file__).parent


def _venv_bin() -> Path:
    return Path(sys.executable).parent


def _tool(name: str) -> str:
    """A console script of this interpreter's environment (``ray``, ``serve``), else from PATH."""
    candidate = _venv_bin() / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise ClusterError(f"command {name!r} not found next to {sys.executable} or on PATH")
    return found


def ray_temp_dir(run_dir: str | Path) -> Path:
    """Ray's ``--temp-dir``: ``<run_dir>/ray`` when its socket paths fit, else a short /tmp folder."""
    preferred = Path(run_dir) / "ray"
    if len(str(preferred)) + _RAY_SOCKET_TAIL <= _UNIX_SOCKET_MAX:
        return preferred
    digest = hashlib.sha1(str(Path(run_dir)).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"shoplake-ray-{digest}"


# --------------------------------------------------------------------------- addresses


def spark_master_url(cfg: Config) -> str:
    return f"spark://{cfg.cluster.host}:{cfg.cluster.spark_master_port}"


def spark_master_ui(cfg: Config) -> str:
    return f"http://{cfg.cluster.host}:{cfg.cluster.spark_master_webui_port}"


def ray_dashboard_url(cfg: Config) -> str:
    """Where ``ray job submit`` and ``serve deploy`` go (``--address``)."""
    return f"http://{cfg.cluster.host}:{cfg.cluster.ray_dashboard_port}"


def ray_gcs_address(cfg: Config) -> str:
    """Where extra Ray nodes join (``ray start --address``)."""
    return f"{cfg.cluster.host}:{cfg.cluster.ray_head_port}"


def ray_token_path(cfg: Config) -> Path:
    return Path(cfg.cluster.run_dir) / RAY_TOKEN_FILE


# --------------------------------------------------------------------------- command lines


def _whole_cpus(value: float, key: str) -> int:
    if value != int(value) or value < 0:
        raise ClusterError(f"config key '{key}': `ray start --num-cpus` takes a whole number of CPUs, got {value}")
    return int(value)


def memory_mib(value: str) -> int:
    """Spark memory strings (``2g``, ``512m``, ``1024``: MiB) in MiB."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)b?\s*", value.lower())
    if not m:
        raise ClusterError(f"not a memory size: {value!r} (e.g. 2g, 512m)")
    number, unit = int(m.group(1)), m.group(2) or "m"
    return {"k": number // 1024, "m": number, "g": number * 1024, "t": number * 1024 * 1024}[unit]


def spark_master_command(cfg: Config) -> list[str]:
    """``spark-class ...Master`` on the configured host and ports."""
    cc = cfg.cluster
    return [
        str(spark_home() / "bin" / "spark-class"),
        "org.apache.spark.deploy.master.Master",
        "--host", cc.host,
        "--port", str(cc.spark_master_port),
        "--webui-port", str(cc.spark_master_webui_port),
    ]  # fmt: skip


def spark_worker_command(cfg: Config, index: int) -> list[str]:
    """``spark-class ...Worker`` number ``index`` (0-based): its UI port counts up from the first."""
    cc = cfg.cluster
    return [
        str(spark_home() / "bin" / "spark-class"),
        "org.apache.spark.deploy.worker.Worker",
        spark_master_url(cfg),
        "--cores", str(cc.spark_worker_cores),
        "--memory", cc.spark_worker_memory,
        "--host", cc.host,
        "--webui-port", str(cc.spark_worker_webui_port + index),
        "--work-dir", str(Path(cc.run_dir) / "spark-work" / f"worker-{index}"),
    ]  # fmt: skip


def _ray_node_port_args(node_ports: dict[str, int]) -> list[str]:
    args: list[str] = []
    for name in RAY_NODE_PORTS:
        if name in node_ports:
            args += [f"--{name.replace('_', '-')}-port", str(node_ports[name])]
    return args


def ray_head_command(cfg: Config, temp_dir: str | Path, node_ports: dict[str, int] | None = None) -> list[str]:
    """``ray start --head --block`` with the configured ports and CPUs.

    Args:
        cfg: Configuration; ``cfg.cluster`` gives ports and CPUs.
        temp_dir: Ray's temp folder (see :func:`ray_temp_dir`).
        node_ports: This node's agent ports by name (:data:`RAY_NODE_PORTS`).
    """
    cc = cfg.cluster
    return [
        _tool("ray"), "start", "--head", "--block",
        "--port", str(cc.ray_head_port),
        "--num-cpus", str(_whole_cpus(cc.ray_head_cpus, "cluster.ray_head_cpus")),
        "--node-ip-address", cc.host,
        "--dashboard-host", cc.host,
        "--dashboard-port", str(cc.ray_dashboard_port),
        "--ray-client-server-port", str(cc.ray_client_port),
        "--include-dashboard", "true",
        "--temp-dir", str(temp_dir),
        "--disable-usage-stats",
        *_ray_node_port_args(node_ports or {}),
    ]  # fmt: skip


def ray_worker_command(cfg: Config, index: int, temp_dir: str | Path, node_ports: dict[str, int] | None = None) -> list[str]:
    """``ray start --block --address <head>`` for extra node ``index`` (0-based) of ``cluster.ray_worker_nodes``."""
    cc = cfg.cluster
    cpus = _whole_cpus(cc.ray_worker_nodes[index], f"cluster.ray_worker_nodes[{index}]")
    return [
        _tool("ray"), "start", "--block",
        "--address", ray_gcs_address(cfg),
        "--num-cpus", str(cpus),
        "--node-ip-address", cc.host,
        "--temp-dir", str(temp_dir),
        "--disable-usage-stats",
        *_ray_node_port_args(node_ports or {}),
    ]  # fmt: skip


# --------------------------------------------------------------------------- ports


def configured_ports(cc: ClusterConfig, spark: bool = True, ray: bool = True) -> dict[str, int]:
    """Every port the clusters listen on, by the config key that sets it."""
    ports: dict[str, int] = {}
    if spark:
        ports["cluster.spark_master_port"] = cc.spark_master_port
        ports["cluster.spark_master_webui_port"] = cc.spark_master_webui_port
        for i in range(cc.spark_workers):
            label = "cluster.spark_worker_webui_port" + (f" (+{i}, worker {i})" if i else "")
            ports[label] = cc.spark_worker_webui_port + i
    if ray:
        ports["cluster.ray_head_port"] = cc.ray_head_port
        ports["cluster.ray_dashboard_port"] = cc.ray_dashboard_port
        ports["cluster.ray_client_port"] = cc.ray_client_port
        ports["cluster.serve_http_port"] = cc.serve_http_port
    return ports


def validate_ports(cc: ClusterConfig, spark: bool = True, ray: bool = True) -> None:
    """Refuse a port used twice, out of range, or inside Ray's worker port range.

    Raises:
        ClusterError: Naming the config keys involved.
    """
    seen: dict[int, str] = {}
    low, high = RAY_WORKER_PORT_RANGE
    for key, port in configured_ports(cc, spark, ray).items():
        if not 0 < port < 65536:
            raise ClusterError(f"config key '{key}': port {port} is out of range")
        if port in seen:
            raise ClusterError(f"port {port} is configured twice: '{seen[port]}' and '{key}'")
        seen[port] = key
        if ray and low <= port <= high:
            raise ClusterError(
                f"config key '{key}': port {port} lies in Ray's worker port range {low}-{high}, which Ray refuses; choose another"
            )


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on ``port`` (on ``host`` or on all addresses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        if s.connect_ex((host, port)) == 0:
            return True
    # Binding all addresses also catches a listener on another interface; SO_REUSEADDR
    # keeps sockets in TIME_WAIT from a cluster that just stopped from counting.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError:
            return True
    return False


def check_ports_free(cfg: Config, spark: bool = True, ray: bool = True) -> None:
    """Raise :class:`ClusterError` naming the first configured port that is taken."""
    cc = cfg.cluster
    validate_ports(cc, spark, ray)
    for key, port in configured_ports(cc, spark, ray).items():
        if port_in_use(port, cc.host):
            raise ClusterError(
                f"port {port} ({key}) is already in use on {cc.host}: stop what listens there "
                f"or choose another port with --set {key.split(' ')[0]}=<port>"
            )


def free_ports(count: int, host: str = "127.0.0.1", avoid: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """``count`` distinct ports that are free now (picked by the kernel), outside Ray's worker range."""
    found: list[int] = []
    low, high = RAY_WORKER_PORT_RANGE
    while len(found) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in found and port not in avoid and not low <= port <= high:
            found.append(port)
    return found


# --------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (state, ppid, pgrp, ...), or None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rfind(")") + 2 :].split()


def _start_ticks(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def _reap(pid: int) -> None:
    """Collect the exit status of our own finished child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def pid_alive(pid: int) -> bool:
    """True for a running process (zombies count as gone)."""
    if pid <= 0:
        return False
    _reap(pid)
    if Path("/proc").is_dir():
        fields = _proc_stat(pid)
        return fields is not None and fields[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_ours(rec: ProcessRecord) -> bool:
    """The recorded process runs, and it is the one we started (not a reused PID)."""
    if not pid_alive(rec.pid):
        return False
    return rec.start_ticks is None or _start_ticks(rec.pid) == rec.start_ticks


def _all_processes() -> dict[int, tuple[int, int]]:
    """``pid -> (ppid, pgid)`` of every live process (Linux ``/proc``)."""
    out: dict[int, tuple[int, int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return out
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields and fields[0] not in ("Z", "X"):
            out[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return out


def process_tree(rec: ProcessRecord) -> set[int]:
    """Live processes that belong to a recorded one: its process group and its descendants.

    Descendants count even when they moved to a group of their own (PySpark's worker
    daemon does). A recorded PID now used by another program yields nothing.
    """
    if rec.pid and pid_alive(rec.pid) and not _is_ours(rec):
        return set()  # our leader is gone and the PID was reused: nothing here is ours
    table = _all_processes()
    if not table:  # no /proc (not Linux): only the recorded process itself is known
        return {rec.pid} if pid_alive(rec.pid) else set()
    members = {pid for pid, (_, pgid) in table.items() if rec.pgid and pgid == rec.pgid}
    if rec.pid in table:
        members.add(rec.pid)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    todo = list(members)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in members:
                members.add(child)
                todo.append(child)
    members.discard(os.getpid())
    members.discard(1)
    return members


def _signal(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    alive = {p for p in pids if pid_alive(p)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {p for p in alive if pid_alive(p)}
    return alive


def stop_processes(records: list[ProcessRecord], grace: float = 20.0) -> dict[str, str]:
    """Stop recorded processes and everything they started; SIGKILL what outlives ``grace``.

    SIGTERM goes first to each group's leader, which stops its own children (a Spark
    worker its executors; ``ray start --block`` drains its node, then stops raylet and
    agents): signalling a Ray group all at once makes that drain hang. When the
    leaders are gone, or after half the grace period, the rest of each group and its
    descendants get SIGTERM too; after ``grace`` seconds in all, SIGKILL.

    Returns:
        ``name -> outcome``: ``not running``, ``stopped`` or ``killed``.
    """
    trees = {rec.name: process_tree(rec) for rec in records}
    running = [rec for rec in records if trees[rec.name]]
    pending = set().union(*trees.values()) if trees else set()
    leaders = {rec.pid for rec in running if _is_ours(rec)}
    _signal(leaders, signal.SIGTERM)
    deadline = time.monotonic() + grace
    half = time.monotonic() + grace / 2
    while time.monotonic() < half and any(pid_alive(p) for p in leaders) and any(pid_alive(p) for p in pending):
        time.sleep(0.2)

    def current(rec: ProcessRecord) -> set[int]:
        # Take the tree again: a process may have started children since.
        return {p for p in process_tree(rec) | trees[rec.name] if pid_alive(p)}

    for rec in running:
        rest = current(rec)
        _signal(rest, signal.SIGTERM)
        pending |= rest
    left = _wait_gone(pending, max(deadline - time.monotonic(), 0.0))
    killed: set[str] = set()
    if left:
        for rec in running:
            rest = current(rec)
            if rest:
                log.warning("%s (pid %d) did not stop within %.0f s after SIGTERM: sending SIGKILL", rec.name, rec.pid, grace)
                _signal(rest, signal.SIGKILL)
                killed.add(rec.name)
                left |= rest
        left = _wait_gone(left, 10.0)
    outcome: dict[str, str] = {}
    for rec in records:
        tree = trees[rec.name]
        if not tree:
            outcome[rec.name] = "not running"
        elif tree & left:
            outcome[rec.name] = f"still running: pids {sorted(tree & left)}"
        else:
            outcome[rec.name] = "killed" if rec.name in killed else "stopped"
    return outcome


# --------------------------------------------------------------------------- state file


def load_state(cfg: Config) -> ClusterState | None:
    """The recorded cluster, or None when nothing is recorded."""
    path = state_path(cfg)
    if not path.is_file():
        return None
    try:
        return ClusterState.from_json(path.read_text())
    except (ValueError, TypeError) as exc:
        raise ClusterError(f"{path} is not a cluster record ({exc}); stop its processes by hand and delete it") from None


def save_state(cfg: Config, state: ClusterState) -> None:
    """Write ``cluster.json`` atomically."""
    path = state_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(state.to_json())
    os.replace(tmp, path)


def status(cfg: Config) -> ClusterState | None:
    """The recorded cluster with each process's ``alive`` filled in, or None."""
    state = load_state(cfg)
    if state is None:
        return None
    for rec in state.processes:
        rec.alive = _is_ours(rec)
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


# --------------------------------------------------------------------------- start


_CHILDREN: dict[int, subprocess.Popen] = {}  # keeps Popen objects so their exit can be collected


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
    rec = ProcessRecord(name, role, argv, str(log_path), proc.pid, proc.pid, _start_ticks(proc.pid), ports)
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


def ray_token(cfg: Config) -> str | None:
    path = ray_token_path(cfg)
    return path.read_text().strip() if path.is_file() else None


def ray_dashboard_json(cfg: Config, path: str, timeout: float = 5.0):
    """GET a dashboard API path (``/api/version``, ``/api/jobs/<id>``) with the cluster's token."""
    return http_json(f"{ray_dashboard_url(cfg)}{path}", ray_token(cfg), timeout)


def ray_alive_nodes(cfg: Config) -> list[dict]:
    """Alive nodes of the Ray cluster (the dashboard's state API); empty when it does not answer."""
    data = ray_dashboard_json(cfg, "/api/v0/nodes?limit=1000") or {}
    try:
        nodes = data["data"]["result"]["result"]
    except (KeyError, TypeError):
        return []
    return [n for n in nodes if n.get("state") == "ALIVE"]


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
            dashboard = f"dashboard {ray_dashboard_url(cfg)}/api/version does not answer"
            _wait("the Ray head", lambda: (ray_dashboard_json(cfg, "/api/version") is not None, dashboard), [head], deadline, timeout)
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


# --------------------------------------------------------------------------- shipping code


_PROJECT_FILES = ("pyproject.toml", "setup.cfg", "setup.py", "MANIFEST.in", "README.md", "README.rst", "LICENSE", "LICENSE.txt")


def build_wheel(cfg: Config) -> Path:
    """Build the ``shoplake`` wheel into ``<run_dir>/dist`` (offline, no build isolation).

    The project is copied to ``<run_dir>/wheel-src`` first so that the build leaves
    the checkout untouched (no ``build/`` or ``*.egg-info`` there). When pip cannot
    build a wheel (no setuptools in the environment), a zip of ``lib/shoplake`` is
    made instead; both work with :func:`spark_submit_argv`.

    Returns:
        The wheel (or zip) path.
    """
    root = Path(cfg.project_root)
    run_dir = Path(cfg.cluster.run_dir)
    dist, stage = run_dir / "dist", run_dir / "wheel-src"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    dist.mkdir(parents=True, exist_ok=True)
    for old in [*dist.glob("shoplake-*.whl"), *dist.glob("shoplake-*.zip")]:
        old.unlink()
    for name in _PROJECT_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, stage / name)
    shutil.copytree(root / "lib", stage / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(dist), str(stage)]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    wheels = sorted(dist.glob("shoplake-*.whl"))
    if proc.returncode == 0 and wheels:
        log.info("built %s in %.1f s", wheels[-1], time.monotonic() - started)
        return wheels[-1]
    log.warning("pip could not build the wheel (%s); shipping a zip of lib/shoplake instead", proc.stderr.strip()[-500:])
    return _zip_package(root / "lib" / "shoplake", dist / "shoplake-src.zip")


def _zip_package(package: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                zf.write(path, Path(package.name) / path.relative_to(package))
    return target


def py_files_archive(package: str | Path) -> Path:
    """A path that ``--py-files`` puts on the executors' ``sys.path``.

    PySpark adds only ``.zip``, ``.egg`` and ``.jar`` files to it, so a wheel (a zip
    archive with the package at its root) is shipped as a ``.zip`` copy beside it.
    """
    path = Path(package)
    if path.suffix != ".whl":
        return path
    target = path.with_suffix(".zip")
    if not target.is_file() or target.stat().st_mtime < path.stat().st_mtime:
        shutil.copy2(path, target)
    return target


def submit_env(cfg: Config, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for ``spark-submit`` and ``ray job submit`` against the local clusters.

    Sets the cluster addresses (``SPARK_MASTER_URL``; ``RAY_ADDRESS`` as the dashboard
    URL, which is what job submission and ``serve deploy`` take), the Ray token
    (``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN_PATH``), ``PYSPARK_PYTHON``, ``SPARK_LOCAL_IP``
    and ``SHOPLAKE_CONF_DIR`` (the folder of this configuration: a driver imports the
    shipped package from an archive, where files cannot be read as paths). ``SHOPLAKE_LAKE_ROOT`` and ``SHOPLAKE_LANDING_ROOT`` are left
    to the caller.

    Args:
        cfg: Configuration.
        base: Environment to start from (default: this process's).
    """
    env = dict(os.environ if base is None else base)
    for key in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET"):
        env.pop(key, None)
    env["PATH"] = os.pathsep.join([str(_venv_bin()), env.get("PATH", "")])
    env.update(
        SPARK_HOME=str(spark_home()),
        SPARK_MASTER_URL=spark_master_url(cfg),
        SPARK_LOCAL_IP=cfg.cluster.host,
        PYSPARK_PYTHON=sys.executable,
        RAY_ADDRESS=ray_dashboard_url(cfg),
        SHOPLAKE_CONF_DIR=cfg.conf_dir,
    )
    if ray_token_path(cfg).is_file():
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(ray_token_path(cfg)))
    return env


def _entry_script(cfg: Config, script: str | Path) -> Path:
    path = Path(script)
    if len(path.parts) == 1 and path.suffix == "":
        path = Path("jobs") / f"{path}.py"
    if not path.is_absolute():
        path = Path(cfg.project_root) / path
    if not path.is_file():
        raise ClusterError(f"entry point {path} not found")
    return path


def spark_submit_argv(
    cfg: Config,
    script: str | Path,
    args: list[str] | tuple[str, ...] = (),
    py_files: str | Path | None = None,
    conf: dict[str, str] | None = None,
    env_name: str = "cluster",
) -> list[str]:
    """The ``spark-submit`` command line of a job on the local Spark cluster.

    Args:
        cfg: Configuration; ``cfg.cluster`` gives the master and the executor sizes.
        script: ``jobs/ingest.py``, a path, or a job name (``ingest``).
        args: Arguments after ``--env <env_name>`` (``--from``, ``--set`` ...).
        py_files: The package to ship (:func:`build_wheel`); None ships nothing.
        conf: Extra ``--conf`` settings.
        env_name: The job's ``--env``.

    Returns:
        The argv, one executor of one core per worker core.
    """
    cc = cfg.cluster
    executor_mib = max(memory_mib(cc.spark_worker_memory) // cc.spark_worker_cores, 512)
    settings = {
        "spark.executor.cores": "1",
        "spark.cores.max": str(cc.spark_workers * cc.spark_worker_cores),
        "spark.executor.memory": f"{executor_mib}m",
        **(conf or {}),
    }
    argv = [str(spark_home() / "bin" / "spark-submit"), "--master", spark_master_url(cfg)]
    if py_files is not None:
        argv += ["--py-files", str(py_files_archive(py_files))]
    for key, value in settings.items():
        argv += ["--conf", f"{key}={value}"]
    return [*argv, str(_entry_script(cfg, script)), "--env", env_name, *args]


def ray_job_submit_argv(
    cfg: Config,
    entrypoint: list[str],
    working_dir: str | Path | None = None,
    env_vars: dict[str, str] | None = None,
    py_modules: list[str | Path] | None = None,
    submission_id: str | None = None,
) -> list[str]:
    """The ``ray job submit`` command line of an entry point on the local Ray cluster.

    Args:
        cfg: Configuration.
        entrypoint: The command the job runs (``["python", "ray_apps/x.py", "--env", "cluster"]``).
        working_dir: Uploaded and made the job's current folder (default: the project root).
        env_vars: Environment variables of the job and its workers.
        py_modules: Packages shipped to the job and its workers (default: ``lib/shoplake``).
        submission_id: A chosen job id, to look the job up later.
    """
    root = Path(cfg.project_root)
    modules = py_modules if py_modules is not None else [root / "lib" / "shoplake"]
    runtime_env: dict = {"working_dir": str(working_dir or root)}
    if modules:
        runtime_env["py_modules"] = [str(m) for m in modules]
    if env_vars:
        runtime_env["env_vars"] = dict(env_vars)
    argv = [_tool("ray"), "job", "submit", "--address", ray_dashboard_url(cfg), "--runtime-env-json", json.dumps(runtime_env)]
    if submission_id:
        argv += ["--submission-id", submission_id]
    return [*argv, "--", *entrypoint]


def ray_job_info(cfg: Config, submission_id: str) -> dict | None:
    """The dashboard's record of a submitted job (``status``, ``message``, ...)."""
    return ray_dashboard_json(cfg, f"/api/jobs/{submission_id}")
