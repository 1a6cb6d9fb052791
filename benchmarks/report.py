"""Judge results against the targets and render them as Markdown."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.loadgen import Result
from benchmarks.scenarios import ORDER, TARGETS


@dataclass
class Verdict:
    target: str  # what was asked, with the measured value
    status: str  # PASS, FAIL or "—"


def _users(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def judge(results: list[Result]) -> dict[tuple[int, str], Verdict]:
    sizes = sorted({r.users for r in results})
    by = {(r.users, r.key): r for r in results}
    smallest = sizes[0] if sizes else 0
    verdicts: dict[tuple[int, str], Verdict] = {}
    for r in results:
        target = TARGETS[r.key]
        parts: list[str] = []
        ok = True
        if target.min_share_of_reference is not None:
            ref = by.get((r.users, "reference"))
            if ref is None or ref.rps == 0:
                parts.append(f"≥ {target.min_share_of_reference:.0%} of reference: no reference")
                ok = False
            else:
                share = r.rps / ref.rps
                parts.append(f"≥ {target.min_share_of_reference:.0%} of ref ({share:.0%})")
                ok &= share >= target.min_share_of_reference
        if target.max_p95_growth is not None:
            base = by.get((smallest, r.key))
            if r.users == smallest:
                parts.append("p95 growth: baseline for larger sizes" if len(sizes) > 1
                             else "p95 growth: n/a, one size")
            elif base is None or not base.latencies:
                parts.append("p95 growth: no baseline")
                ok = False
            else:
                growth = r.percentile(95) / base.percentile(95)
                parts.append(f"p95 ≤ {target.max_p95_growth}× {_users(smallest)} ({growth:.2f}×)")
                ok &= growth <= target.max_p95_growth
        if r.errors:
            parts.append(f"{r.errors} bad responses")
            ok = False
        judged = target.min_share_of_reference is not None or (
            target.max_p95_growth is not None and r.users != smallest
        )
        status = ("PASS" if ok else "FAIL") if (judged or r.errors) else "—"
        if r.key == "reference" and r.runs:
            spread = max(r.runs) / min(r.runs) if min(r.runs) else float("inf")
            parts.append("yardstick; runs " + " / ".join(f"{x:.0f}" for x in r.runs) + " req/s"
                         + (" (spread > 25 %: the machine's load changed)" if spread > 1.25 else ""))
        verdicts[(r.users, r.key)] = Verdict("; ".join(parts) or "—", status)
    return verdicts


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _per_request(total: float | None, n: int) -> str:
    return "—" if total is None or not n else f"{total / n * 1000:.1f}"


def _cpu_ms(r: Result) -> tuple[float, float, float] | None:
    """(gunicorn, PostgreSQL, client) CPU milliseconds per request, None when not measured."""
    if None in (r.server_cpu, r.db_cpu) or not r.requests:
        return None
    return tuple(x * 1000 / r.requests for x in (r.server_cpu, r.db_cpu, r.client_cpu))  # type: ignore[return-value]


def _budget_table(ordered: list[Result], refs: dict[int, Result]) -> list[str]:
    """Where a scenario with a share-of-reference target stands in CPU: what it may spend per
    request to reach the target, and what is left of that for scimsync's own Python once
    PostgreSQL, the load generator and the framework (the reference's gunicorn CPU: HTTP,
    Django's handler and middleware, which every request pays) have taken theirs.

    On a machine the server shares with its clients, requests/s is roughly the CPU the run
    keeps busy over the CPU per request, and both runs keep it about equally busy; so
    reaching a share s of the reference's requests/s means spending at most 1/s of its CPU
    per request. An estimate, informational like the table above.
    """
    rows = []
    for r in ordered:
        target = TARGETS[r.key].min_share_of_reference
        ref = refs.get(r.users)
        mine, theirs = _cpu_ms(r), ref and _cpu_ms(ref)
        if target is None or mine is None or not theirs:
            continue
        budget = sum(theirs) / target
        framework = theirs[0]
        gunicorn, postgres, client = mine
        rows.append(
            f"| {_users(r.users)} | {r.key} | {target:.0%} | {budget:.2f} | {sum(mine):.2f} | {postgres:.2f} | "
            f"{client:.2f} | {framework:.2f} | {budget - framework - postgres - client:.2f} | "
            f"{gunicorn - framework:.2f} |"
        )
    if not rows:
        return []
    return [
        "",
        "CPU budget of the share-of-reference targets, ms per request (estimate; see docs/benchmarks.md).",
        "*Budget*: the reference's CPU per request (gunicorn + PostgreSQL + client) over the target share.",
        "*Framework*: the reference's gunicorn CPU (HTTP, Django's handler and middleware). *Left for",
        "scimsync's Python*: the budget less PostgreSQL, client and framework; *scimsync's Python now*: the",
        "scenario's gunicorn CPU less the framework's (the sync engine, SCIM parsing and rendering, and",
        "psycopg's side of every statement).",
        "",
        "| users | scenario | target | budget | used | PostgreSQL | client | framework | left for scimsync's Python | scimsync's Python now |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]


def render(results: list[Result], meta: dict) -> tuple[str, bool]:
    """The Markdown report and whether every target passed."""
    verdicts = judge(results)
    ordered = sorted(results, key=lambda r: (r.users, ORDER.index(r.key)))
    refs = {r.users: r for r in results if r.key == "reference"}
    lines = [
        "# scimsync benchmark results",
        "",
        f"Run {meta['started']} on {meta['machine']}; commit {meta['commit']}.",
        f"gunicorn `{meta['gunicorn']}` on PostgreSQL {meta['postgres']}; "
        f"{meta['concurrency']} concurrent client processes on the same machine; "
        f"each scenario and size: up to {meta['requests']} requests or {meta['seconds']:g} s in all, split over "
        f"{meta['rounds']} round(s) with the sizes measured back to back (the reference once more at the end); "
        f"{meta['warmup']} warm-up requests before the first run of each.",
        f"Load average (1 min) before / after: {meta['load_before']} / {meta['load_after']}"
        + (" — the machine was busy with other work; absolute numbers are noisy, "
           "ratios to the reference less so." if meta.get("busy") else "."),
        "",
        "| users | scenario | requests | req/s | p50 ms | p95 ms | p99 ms | vs reference | target | result |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in ordered:
        ref = refs.get(r.users)
        share = f"{r.rps / ref.rps:.0%}" if ref and ref.rps and r.key != "reference" else "—"
        v = verdicts[(r.users, r.key)]
        lines.append(
            f"| {_users(r.users)} | {r.label} | {r.requests} | {r.rps:.0f} | {_ms(r.percentile(50))} | "
            f"{_ms(r.percentile(95))} | {_ms(r.percentile(99))} | {share} | {v.target} | **{v.status}** |"
        )
    lines += [
        "",
        "Where the time goes: CPU per request from /proc (gunicorn workers; PostgreSQL backends of the",
        "benchmark database; the load generator). \"Share by CPU\" is the reference's server CPU per request",
        "over the scenario's: roughly the req/s share an idle machine would show, and far less sensitive to",
        "other load than req/s. Informational; the verdicts use req/s and p95 as the targets say.",
        "",
        "| users | scenario | gunicorn CPU ms/req | PostgreSQL CPU ms/req | client CPU ms/req | share by CPU | statuses | errors |",
        "|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in ordered:
        statuses = ", ".join(f"{k}×{v}" for k, v in sorted(r.statuses.items()))
        ref = refs.get(r.users)
        cpu_share = "—"
        mine, theirs = _cpu_ms(r), ref and _cpu_ms(ref)
        if r.key != "reference" and mine and theirs and sum(mine[:2]) > 0:
            cpu_share = f"{sum(theirs[:2]) / sum(mine[:2]):.0%}"  # server CPU: gunicorn + PostgreSQL
        lines.append(
            f"| {_users(r.users)} | {r.key} | {_per_request(r.server_cpu, r.requests)} | "
            f"{_per_request(r.db_cpu, r.requests)} | {_per_request(r.client_cpu, r.requests)} | {cpu_share} | "
            f"{statuses} | {r.errors} |"
        )
    lines += _budget_table(ordered, refs)
    samples = [(r, s) for r in ordered for s in r.error_samples]
    if samples:
        lines += ["", "Sample bad responses:", ""]
        lines += [f"- {_users(r.users)} {r.key}: `{s}`" for r, s in samples]
    if meta.get("loads"):
        lines += ["", "Data loaded per size (users, AttributeState rows, journal rows; seconds):", ""]
        for size, info in meta["loads"].items():
            rows = info.get("rows", {})
            lines.append(
                f"- {_users(int(size))}: {rows.get('users_user', '?')} users, "
                f"{rows.get('scimsync_attributestate', '?')} attribute states, "
                f"{rows.get('scimsync_journalentry', '?')} journal entries with "
                f"{rows.get('scimsync_journalchange', '?')} changes; loaded in {info.get('load_seconds', '?')} s "
                f"(migrate {info.get('migrate_seconds', '?')} s)"
                + (f", this run: cloned from the cached template in {info['clone_seconds']} s"
                   if info.get("cached") else "")
            )
    judged = [v for v in verdicts.values() if v.status != "—"]
    passed = bool(judged) and all(v.status == "PASS" for v in judged)
    failed = sum(1 for v in judged if v.status == "FAIL")
    lines += ["", f"**{len(judged) - failed} of {len(judged)} targets met.**" if judged else "No targets judged.", ""]
    return "\n".join(lines), passed
