"""What ``shoplake cluster up`` recorded: the processes and addresses in ``<run_dir>/cluster.json``."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shoplake.cluster.processes import ProcessRecord, is_ours
from shoplake.config import Config

log = logging.getLogger(__name__)


STATE_FILE = "cluster.json"


class ClusterError(RuntimeError):
    """A local cluster cannot start or be reached; the message names the port or log file."""


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
        return any(is_ours(p) for p in self.processes)

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


def state_path(cfg: Config) -> Path:
    """``<run_dir>/cluster.json``."""
    return Path(cfg.cluster.run_dir) / STATE_FILE


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
