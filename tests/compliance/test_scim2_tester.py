"""The independent compliance suite scim2-tester, run against a live scimsync over HTTP.

Every check the suite has runs (no tag filtering). A check that reports an
error, a critical fault or a SHOULD-level deviation fails the test: RFC 7643
and RFC 7644 MUSTs and SHOULDs alike.
"""

from __future__ import annotations

from collections import Counter
from importlib.metadata import version

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

pytestmark = pytest.mark.django_db(transaction=True)

# SKIPPED is a failure too: with the full check set and every feature advertised,
# a skip means the suite could not check something.
FAILING = {Status.ERROR, Status.CRITICAL, Status.DEVIATION, Status.SKIPPED}


def _describe(result) -> str:
    where = f"[{result.resource_type}] " if result.resource_type else ""
    return f"{result.status.name} {where}{result.title}: {result.reason}\n    data: {result.data!r}"[:3000]


def test_scim2_tester_full_check_set_reports_no_failure(live_server, token):
    """RFC 7643 / RFC 7644 as checked by scim2-tester: discovery (§4), CRUD (§3.3-§3.6),
    attribute projection (§3.4.2.5, §3.9), PATCH add/remove/replace (§3.5.2), 404 errors (§3.12)."""
    http = httpx2.Client(
        base_url=live_server.url + "/scim/v2",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    with http:
        results = check_server(SyncSCIMClient(http))

    counts = Counter(r.status.name for r in results)
    summary = f"scim2-tester {version('scim2-tester')}: {len(results)} checks, " + ", ".join(
        f"{name.lower()} {counts.get(name, 0)}" for name in (s.name for s in Status)
    )
    print("\n" + summary)
    failures = [r for r in results if r.status in FAILING]
    assert not failures, summary + "\n" + "\n".join(_describe(r) for r in failures)
