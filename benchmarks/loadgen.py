"""A small closed-loop HTTP load generator: N client processes, bounded in requests and time.

Each client process sends one request at a time over http.client (a new TCP
connection whenever the server closes it, as gunicorn's sync workers do) and
records every latency. Processes, not threads: a thread's measured latency
would include waiting for the GIL of its siblings. Loopback only.
"""

from __future__ import annotations

import http.client
import multiprocessing
import os
import random
import signal
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

Request = tuple[str, str, bytes | None]  # method, path with query, body


@dataclass
class Scenario:
    key: str
    label: str
    make: Callable[[random.Random, int], Request]
    expect: int = 200
    # A cheap test of the body (every response); False counts as an error.
    check: Callable[[bytes], bool] | None = None


@dataclass
class Result:
    key: str
    label: str
    users: int
    requests: int
    errors: int
    elapsed: float
    latencies: list[float]  # seconds, sorted
    statuses: Counter
    error_samples: list[str] = field(default_factory=list)
    client_cpu: float = 0.0  # seconds of CPU the client processes used
    server_cpu: float | None = None  # seconds, gunicorn workers
    db_cpu: float | None = None  # seconds, PostgreSQL backends of the bench database

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile, in seconds."""
        if not self.latencies:
            return float("nan")
        rank = max(1, min(len(self.latencies), round(p / 100 * len(self.latencies) + 0.5)))
        return self.latencies[rank - 1]


def run(
    scenario: Scenario, *, host: str, port: int, headers: dict[str, str], users: int,
    requests: int, seconds: float, concurrency: int, seed: int = 0,
) -> Result:
    """Send up to `requests` requests (split across `concurrency` clients), for at most `seconds`."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    per_client = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    start_at = time.monotonic() + 0.3
    deadline = start_at + seconds
    procs = [
        ctx.Process(
            target=_client, daemon=True,
            args=(i, scenario, host, port, headers, per_client[i], start_at, deadline, seed * 1000 + i, queue),
        )
        for i in range(concurrency) if per_client[i]
    ]
    try:
        for p in procs:
            p.start()
        parts = [queue.get(timeout=seconds + 120) for _ in procs]
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
                p.join(5)
    latencies: list[float] = []
    statuses: Counter = Counter()
    samples: list[str] = []
    errors = 0
    for part in parts:
        lat = array("d")
        lat.frombytes(part["latencies"])
        latencies.extend(lat)
        statuses.update(part["statuses"])
        errors += part["errors"]
        samples.extend(part["samples"])
    first = min(p["first"] for p in parts)
    last = max(p["last"] for p in parts)
    latencies.sort()
    return Result(
        key=scenario.key, label=scenario.label, users=users, requests=len(latencies), errors=errors,
        elapsed=last - first, latencies=latencies, statuses=statuses, error_samples=samples[:5],
        client_cpu=sum(p["cpu"] for p in parts),
    )


def _client(index, scenario: Scenario, host, port, headers, count, start_at, deadline, seed, queue) -> None:
    # The parent's handlers (SIGTERM -> KeyboardInterrupt for its cleanup) are not ours.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(host, port, timeout=60)
    latencies = array("d")
    statuses: Counter = Counter()
    samples: list[str] = []
    errors = 0
    cpu0 = time.process_time()
    delay = start_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    first = last = time.monotonic()
    for k in range(count):
        method, path, body = scenario.make(rng, k)
        t0 = time.monotonic()
        if t0 > deadline:
            break
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            status, data = 0, f"{type(e).__name__}: {e}".encode()
        last = time.monotonic()
        latencies.append(last - t0)
        statuses[status] += 1
        if status != scenario.expect or (scenario.check is not None and not scenario.check(data)):
            errors += 1
            if len(samples) < 3:
                samples.append(f"{method} {path} -> {status}: {data[:300]!r}")
    conn.close()
    queue.put({
        "latencies": latencies.tobytes(), "statuses": dict(statuses), "errors": errors, "samples": samples,
        "first": first, "last": last, "cpu": time.process_time() - cpu0, "pid": os.getpid(),
    })
