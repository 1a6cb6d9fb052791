"""DELETE of a user who is somebody's manager, or a group member (RFC 7644 §3.6).

After a DELETE the service provider holds no reference to the resource: the
reports' manager is cleared and their next push or deferred sync must not try
to restore a manager who no longer exists (found by an audit: every later
PATCH of a report was a 400, and every sync run of them failed).
"""

from __future__ import annotations

import pytest

from scimsync.models import AttributeState, JournalChange, SyncRun
from scimsync.sync import runs
from tests.conftest import ENTERPRISE, USER_SCHEMA
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)


def _create(scim, user_name: str, **extra) -> dict:
    response = scim.post("/Users", {"schemas": [USER_SCHEMA, ENTERPRISE], "userName": user_name, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_deleting_a_manager_clears_the_reference_and_later_pushes_and_syncs_work(scim, connection):
    boss = _create(scim, "boss@example.com")
    report = _create(scim, "report@example.com", title="Analyst",
                     **{ENTERPRISE: {"department": "Sales", "manager": {"value": boss["id"]}}})
    assert report[ENTERPRISE]["manager"]["value"] == boss["id"]
    before = scim.get(f"/Users/{report['id']}").headers["ETag"]

    assert scim.delete(f"/Users/{boss['id']}").status_code == 204

    after = scim.get(f"/Users/{report['id']}")
    assert "manager" not in after.json()[ENTERPRISE]
    assert after.headers["ETag"] != before  # the document changed, so its version did
    state = AttributeState.objects.get(user__scim_id=report["id"], attribute="manager")
    assert state.idp_sent and state.idp_value is None and not state.at_risk
    change = JournalChange.objects.get(entry__user__scim_id=report["id"], attribute="manager", new_value__isnull=True)
    assert change.old_value == boss["id"] and "boss@example.com" in change.entry.source

    # The next push of the report (another attribute only) succeeds and re-asserts nothing stale.
    pushed = scim.patch(f"/Users/{report['id']}", [
        {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Finance"}])
    assert pushed.status_code == 200, pushed.text
    assert pushed.json()[ENTERPRISE] == {"department": "Finance"}

    # So does a deferred sync of the report (run inline: the worker tests cover Celery).
    run = runs.sync_run_start(connection=connection, user_ids=[User.objects.get(scim_id=report["id"]).pk])
    runs.sync_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == SyncRun.State.SUCCEEDED, run.error


def test_deleting_a_member_moves_the_groups_version(scim):
    member = _create(scim, "member@example.com")
    group = scim.post("/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                  "displayName": "Team", "members": [{"value": member["id"]}]})
    assert group.status_code == 201, group.text
    tag = group.headers["ETag"]

    assert scim.delete(f"/Users/{member['id']}").status_code == 204

    after = scim.get(f"/Groups/{group.json()['id']}")
    assert after.json().get("members", []) == []
    assert after.headers["ETag"] != tag
    assert scim.get(f"/Groups/{group.json()['id']}", headers={"If-None-Match": tag}).status_code == 200
