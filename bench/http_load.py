"""Bounded HTTP load for the latency benchmarks: keep-alive clients posting JSON bodies."""

from __future__ import annotations

import http.client
import json
import threading
import time


def post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, dict]:
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def fire(port: int, path: str, bodies: list[bytes], clients: int) -> tuple[list[float], float]:
    """POST every body to ``path``, spread over ``clients`` threads with keep-alive connections: latencies (s) and wall time.

    Raises:
        RuntimeError: A request did not answer 200 (the first failure is shown).
    """
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []

    def worker(slot: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for body in bodies[slot::clients]:
                start = time.perf_counter()
                status, answer = post(conn, path, body)
                latencies[slot].append(time.perf_counter() - start)
                if status != 200:
                    errors.append(f"HTTP {status}: {str(answer)[:200]}")
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
