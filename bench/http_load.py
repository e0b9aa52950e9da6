"""Bounded HTTP load for the latency benchmarks: keep-alive clients sending requests to 127.0.0.1, and a free port to serve on."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable

#: One request: method, path, and a JSON body (bytes) or None.
Request = tuple[str, str, bytes | None]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    """One request on an open connection: status and the JSON answer."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def posts(path: str, bodies: list[dict]) -> list[Request]:
    """``POST path`` with each body as JSON."""
    return [("POST", path, json.dumps(b).encode()) for b in bodies]


def fire(
    port: int, requests: list[Request], clients: int, check: Callable[[dict], bool] | None = None, status: int = 200
) -> tuple[list[float], float]:
    """Send every request, spread over ``clients`` threads with keep-alive connections: latencies (s) and wall time.

    Raises:
        RuntimeError: A request did not answer ``status``, or its answer failed ``check`` (the first failure is shown).
    """
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []

    def worker(slot: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for method, path, body in requests[slot::clients]:
                start = time.perf_counter()
                got, answer = send(conn, method, path, body)
                latencies[slot].append(time.perf_counter() - start)
                if got != status or (check is not None and not check(answer)):
                    errors.append(f"{method} {path}: HTTP {got}, {str(answer)[:200]}")
                    return
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, first: {errors[0]}")
    return [x for part in latencies for x in part], wall
