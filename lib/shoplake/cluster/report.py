"""What ``shoplake cluster`` prints: the recorded processes with their ports and logs, and the clusters' addresses."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from shoplake.cluster.commands import RAY_NODE_PORTS
from shoplake.config import Config


def cluster_table(state) -> Table:
    """A table of the recorded cluster processes: pid, state, ports, log file."""
    out = Table(title=f"local clusters in {state.run_dir} (started {state.started_at})")
    for col in ("process", "pid", "state", "ports", "log (in the run dir)"):
        out.add_column(col, justify="right" if col == "pid" else "left", overflow="fold")
    for p in state.processes:
        # Ray's agent ports are picked free at start; the node manager's is enough to tell nodes apart.
        ports = {k: v for k, v in p.ports.items() if k not in RAY_NODE_PORTS or k == "node_manager"}
        alive = "[green]running[/green]" if p.alive else "[red]stopped[/red]"
        log_file = Path(p.log)
        shown = log_file.relative_to(state.run_dir) if log_file.is_relative_to(state.run_dir) else log_file
        out.add_row(p.name, str(p.pid), alive, ", ".join(f"{k} {v}" for k, v in ports.items()), str(shown))
    return out


def _cluster_addresses(cfg: Config, state) -> Table:
    out = Table(show_header=False, box=None)
    out.add_column(style="bold")
    out.add_column()
    if state.spark_master_url:
        out.add_row("Spark master", state.spark_master_url)
        out.add_row("Spark master UI", state.spark_master_ui)
    if state.ray_dashboard_url:
        out.add_row("Ray dashboard", state.ray_dashboard_url)
        out.add_row("Ray GCS", state.ray_address)
        out.add_row("Ray client", state.ray_client_url)
        out.add_row("Ray Serve HTTP", f"http://{cfg.cluster.host}:{cfg.cluster.serve_http_port}")
        out.add_row("Ray token", f"export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={state.ray_auth_token_path}")
    return out


def run_cluster_command(cfg: Config, args: argparse.Namespace, console: Console) -> int:
    """Run ``shoplake cluster up|down|status`` and print what it did: the processes, their ports and logs, the addresses."""
    from shoplake import cluster

    try:
        if args.cluster_command == "up":
            only = args.only
            with console.status(f"starting {only or 'Spark and Ray'} clusters on {cfg.cluster.host} (logs in {cfg.cluster.run_dir}/logs)"):
                state = cluster.up(cfg, spark=only != "ray", ray=only != "spark", timeout=args.timeout)
            console.print(cluster_table(state))
            console.print(_cluster_addresses(cfg, state))
        elif args.cluster_command == "down":
            with console.status(f"stopping the clusters recorded in {cfg.cluster.run_dir}"):
                outcome = cluster.down(cfg, grace=args.grace)
            if not outcome:
                console.print(f"no cluster recorded in {cfg.cluster.run_dir}")
            else:
                out = Table(title="stopped")
                out.add_column("process")
                out.add_column("outcome")
                for name, what in outcome.items():
                    out.add_row(name, what)
                console.print(out)
        else:
            state = cluster.status(cfg)
            if state is None:
                console.print(f"no cluster recorded in {cfg.cluster.run_dir}")
                return 0
            console.print(cluster_table(state))
            console.print(_cluster_addresses(cfg, state))
    except cluster.ClusterError as exc:
        raise SystemExit(f"error: {exc}") from None
    return 0
