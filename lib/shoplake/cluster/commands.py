"""Where the local clusters live and how their processes are started: folders, addresses, ports, command lines."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from shoplake.cluster.state import ClusterError
from shoplake.config import ClusterConfig, Config

log = logging.getLogger(__name__)


RAY_TOKEN_FILE = "ray-auth-token"


#: Ray's default ``--min-worker-port``/``--max-worker-port``: Ray refuses other ports in it.
RAY_WORKER_PORT_RANGE = (10002, 19999)


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


def ray_token(cfg: Config) -> str | None:
    path = ray_token_path(cfg)
    return path.read_text().strip() if path.is_file() else None
