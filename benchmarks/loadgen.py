"""A small closed-loop HTTP load generator: N client processes, bounded in requests and time.

Each client process sends one request at a time and records every latency.
Every request opens its own TCP connection and says `Connection: close`, which
is what gunicorn's sync workers do anyway; the request bytes are built before
the clock starts, and the response is read with a few socket calls, so the
client costs little CPU on a machine it shares with the server. Processes,
not threads: a thread's measured latency would include waiting for the GIL of
its siblings. Loopback only.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import socket
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

    # requests/s of each run merged into this result (the reference is measured twice).
    runs: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile, in seconds."""
        if not self.latencies:
            return float("nan")
        rank = max(1, min(len(self.latencies), round(p / 100 * len(self.latencies) + 0.5)))
        return self.latencies[rank - 1]


def merge(results: list[Result]) -> Result:
    """Several runs of one scenario as one result: requests and time add up, latencies pool."""
    first = results[0]
    return Result(
        key=first.key, label=first.label, users=first.users,
        requests=sum(r.requests for r in results), errors=sum(r.errors for r in results),
        elapsed=sum(r.elapsed for r in results),
        latencies=sorted(x for r in results for x in r.latencies),
        statuses=sum((r.statuses for r in results), Counter()),
        error_samples=[s for r in results for s in r.error_samples][:5],
        client_cpu=sum(r.client_cpu for r in results),
        server_cpu=None if any(r.server_cpu is None for r in results) else sum(r.server_cpu for r in results),
        db_cpu=None if any(r.db_cpu is None for r in results) else sum(r.db_cpu for r in results),
        runs=[x for r in results for x in (r.runs or [r.rps])],
    )


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


def _request_bytes(method: str, path: str, body: bytes | None, host: str, port: int, headers: str) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n{headers}"
    if body is not None:
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + (body or b"")


def _exchange(address: tuple[str, int], payload: bytes) -> tuple[int, bytes]:
    """One request on a fresh connection; the response is read until the server closes it."""
    with socket.create_connection(address, timeout=60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(262144):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator or not head.startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP response: {raw[:100]!r}")
    status = int(head[9:12])
    lower = head.lower()
    if b"\r\ntransfer-encoding: chunked" in lower:
        body = _dechunk(body)
    else:
        marker = lower.find(b"\r\ncontent-length:")
        if marker >= 0:
            length = int(lower[marker + 17:].split(b"\r\n", 1)[0])
            if len(body) != length:
                raise ValueError(f"body of {len(body)} bytes, Content-Length says {length}")
    return status, body


def _dechunk(data: bytes) -> bytes:
    out, pos = [], 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[end + 2:end + 2 + size])
        pos = end + 2 + size + 2


def _client(index, scenario: Scenario, host, port, headers, count, start_at, deadline, seed, queue) -> None:
    # The parent's handlers (SIGTERM -> KeyboardInterrupt for its cleanup) are not ours.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rng = random.Random(seed)
    address = (host, port)
    header_text = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
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
        payload = _request_bytes(method, path, body, host, port, header_text)
        t0 = time.monotonic()
        if t0 > deadline:
            break
        try:
            status, data = _exchange(address, payload)
        except (OSError, ValueError) as e:
            status, data = 0, f"{type(e).__name__}: {e}".encode()
        last = time.monotonic()
        latencies.append(last - t0)
        statuses[status] += 1
        if status != scenario.expect or (scenario.check is not None and not scenario.check(data)):
            errors += 1
            if len(samples) < 3:
                samples.append(f"{method} {path} -> {status}: {data[:300]!r}")
    queue.put({
        "latencies": latencies.tobytes(), "statuses": dict(statuses), "errors": errors, "samples": samples,
        "first": first, "last": last, "cpu": time.process_time() - cpu0, "pid": os.getpid(),
    })
