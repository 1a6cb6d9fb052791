"""benchmarks.report's CPU budget of the share-of-reference targets (issue 3, "Speed")."""

from collections import Counter

from benchmarks.loadgen import Result
from benchmarks.report import render


def _result(key: str, *, gunicorn: float, postgres: float, client: float, requests: int = 1000) -> Result:
    # CPU totals in seconds for `requests` requests, as the load generator and /proc report them.
    return Result(
        key=key, label=key, users=1000, requests=requests, errors=0, elapsed=1.0,
        latencies=[0.001] * requests, statuses=Counter({200: requests}),
        client_cpu=client * requests / 1000, server_cpu=gunicorn * requests / 1000,
        db_cpu=postgres * requests / 1000, runs=[1000.0],
    )


def _meta() -> dict:
    return {"started": "now", "machine": "test", "commit": "abc", "gunicorn": "gunicorn", "postgres": "15",
            "concurrency": 4, "requests": 1000, "seconds": 1, "rounds": 1, "warmup": 0,
            "load_before": 0, "load_after": 0}


def _budget_row(report: str, key: str) -> list[str]:
    row = next(line for line in report.splitlines() if line.startswith(f"| 1k | {key} | 25%"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_budget_is_the_reference_cpu_over_the_target_share_and_names_what_is_left():
    reference = _result("reference", gunicorn=0.4, postgres=0.0, client=0.1)
    patch = _result("patch_department", gunicorn=2.0, postgres=0.9, client=0.2)
    report, _ = render([reference, patch], _meta())
    # 0.5 ms of reference CPU at 25 %: 2.0 ms per PATCH in all. PostgreSQL 0.9, client 0.2 and
    # the framework 0.4 leave 0.5 ms for scimsync's Python, which now uses 2.0 - 0.4 = 1.6.
    assert _budget_row(report, "patch_department") == [
        "1k", "patch_department", "25%", "2.00", "3.10", "0.90", "0.20", "0.40", "0.50", "1.60",
    ]


def test_scenarios_without_a_share_target_have_no_budget_row():
    reference = _result("reference", gunicorn=0.4, postgres=0.0, client=0.1)
    page = _result("list_page", gunicorn=7.0, postgres=1.7, client=0.3)
    report, _ = render([reference, page], _meta())
    assert "CPU budget" not in report
