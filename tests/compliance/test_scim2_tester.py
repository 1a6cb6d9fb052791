"""The independent compliance suite scim2-tester, run against a live scimsync over HTTP.

Every check the suite has runs (check_server with no tag filtering). A check
that reports an error, a critical fault or a SHOULD-level deviation fails the
test, and so does a skipped one: with every feature advertised, a skip means
something went unchecked. The summary line is printed either way.
"""

from __future__ import annotations

from collections import Counter
from importlib.metadata import version

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from mappings.services import custom_attribute_create

pytestmark = pytest.mark.django_db(transaction=True)

FAILING = {Status.ERROR, Status.CRITICAL, Status.DEVIATION, Status.SKIPPED}


def _describe(result) -> str:
    where = f"[{result.resource_type}] " if result.resource_type else ""
    return f"{result.status.name} {where}{result.title}: {result.reason}\n    data: {result.data!r}"[:3000]


def run_scim2_tester(base_url: str, token: str) -> tuple[str, list]:
    """Run the full check set; return the summary line and the failing results."""
    http = httpx2.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    with http:
        results = check_server(SyncSCIMClient(http))
    counts = Counter(r.status for r in results)
    summary = f"scim2-tester {version('scim2-tester')}: {len(results)} checks, " + ", ".join(
        f"{status.name.lower()} {counts.get(status, 0)}" for status in Status
    )
    return summary, [r for r in results if r.status in FAILING]


@pytest.mark.parametrize("custom_attribute", [False, True], ids=["catalogue", "with-custom-attribute"])
def test_scim2_tester_full_check_set_reports_no_failure(live_server, token, custom_attribute):
    """RFC 7643 / RFC 7644 as checked by scim2-tester: discovery (RFC 7644 §4, RFC 7643 §5-7),
    create/read/replace/delete (§3.3-§3.6), attributes/excludedAttributes on GET, list and
    /.search (§3.4.2.5, §3.4.3, §3.9), PATCH add/remove/replace of every attribute the
    schemas declare (§3.5.2), and SCIM errors for unknown endpoints (§3.12).

    Run once with the catalogue only and once with an admin-defined attribute,
    so the product's extension schema (and PATCH on it) is checked too.
    """
    if custom_attribute:
        custom_attribute_create(name="badgeNumber", description="Building badge")
    summary, failures = run_scim2_tester(live_server.url + "/scim/v2", token)
    print("\n" + summary)
    assert not failures, summary + "\n" + "\n".join(_describe(r) for r in failures)
