"""The processes of the local clusters: what was started, whether it still runs, and stopping exactly that (with psutil)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

import psutil

log = logging.getLogger(__name__)

#: Roles of the recorded processes, in start order.
ROLES = ("spark-master", "spark-worker", "ray-head", "ray-worker")

# Keeps the Popen objects of the processes this interpreter started, so their exit can be collected.
_CHILDREN: dict[int, subprocess.Popen] = {}


@dataclass
class ProcessRecord:
    """One process started by :func:`shoplake.cluster.launch.up`.

    Attributes:
        name: Unique name, also the log file's stem (``spark-worker-0``).
        role: One of :data:`ROLES`.
        argv: The command line.
        log: Path of the file holding its stdout and stderr.
        pid: Process id; the process leads its own process group (``pgid == pid``).
        pgid: Process-group id: its children (executors, raylets) share it.
        start_time: When it started (psutil's ``create_time``); tells this process
            from a later one that got the same PID.
        ports: Ports it listens on, by name.
        alive: Filled in by :func:`shoplake.cluster.launch.status`.
    """

    name: str
    role: str
    argv: list[str]
    log: str
    pid: int = 0
    pgid: int = 0
    start_time: float | None = None
    ports: dict[str, int] = field(default_factory=dict)
    alive: bool | None = None


def start_time(pid: int) -> float | None:
    """When process ``pid`` started, or None when there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _reap(pid: int) -> None:
    """Collect the exit status of our own finished child, so it does not linger as a zombie."""
    child = _CHILDREN.get(pid)
    if child is not None:
        child.poll()


def pid_alive(pid: int) -> bool:
    """True for a running process (zombies count as gone)."""
    if pid <= 0:
        return False
    _reap(pid)
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def is_ours(rec: ProcessRecord) -> bool:
    """The recorded process runs, and it is the one we started (not a reused PID)."""
    if not pid_alive(rec.pid):
        return False
    return rec.start_time is None or start_time(rec.pid) == rec.start_time


def process_tree(rec: ProcessRecord) -> set[int]:
    """Live processes that belong to a recorded one: its process group and its descendants.

    Descendants count even when they moved to a group of their own (PySpark's worker
    daemon does). A recorded PID now used by another program yields nothing.
    """
    if rec.pid and pid_alive(rec.pid) and not is_ours(rec):
        return set()  # our leader is gone and the PID was reused: nothing here is ours
    members: set[int] = set()
    for proc in psutil.process_iter():
        try:
            if rec.pgid and os.getpgid(proc.pid) == rec.pgid and pid_alive(proc.pid):
                members.add(proc.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    if pid_alive(rec.pid):
        members.add(rec.pid)
    for pid in list(members):
        try:
            members.update(c.pid for c in psutil.Process(pid).children(recursive=True) if pid_alive(c.pid))
        except psutil.Error:
            continue
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
    """Wait up to ``timeout`` seconds for ``pids`` to end; the ones still alive."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    deadline = time.monotonic() + timeout
    alive = {p.pid for p in procs if pid_alive(p.pid)}
    while alive and time.monotonic() < deadline:
        # Our own children are reaped by _reap; psutil waits on the others.
        psutil.wait_procs([p for p in procs if p.pid in alive], timeout=min(0.2, max(deadline - time.monotonic(), 0.0)))
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
    leaders = {rec.pid for rec in running if is_ours(rec)}
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
