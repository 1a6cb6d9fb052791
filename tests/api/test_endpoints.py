"""What each endpoint does, in process (DRF's test client with alice's read-write key).

The rules are the services' (tested in tests/unit and tests/scim); these tests pin that the API
reaches them the same way the admin does: flagged, journaled, with the same actor.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from mappings.models import AttributeMapping, Connection, MappingChange, ScimToken
from mappings.services import token_create
from scimsync.api.models import ApiKey
from scimsync.models import AttributeState, JournalChange, JournalEntry, ScimRequestLog, SyncRun
from scimsync.sync import services
from tests.api.conftest import provision

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client_as, alice):
    return client_as(alice)


@pytest.fixture
def ada(connection):
    return provision(connection, "ada@example.com", title="Analyst", department="Sales")


def _state(user, attribute) -> AttributeState:
    return AttributeState.objects.get(user=user, attribute=attribute)


# --- users and attributes -----------------------------------------------------


def test_a_local_edit_through_the_api_is_flagged_and_journaled_like_the_admins(api, alice, ada):
    response = api.put(f"/api/v1/users/{ada.pk}/attributes/title/", {"value": "Lead Analyst"}, format="json")

    assert response.status_code == 200, response.json()
    row = response.json()
    assert row["current"] == "Lead Analyst" and row["idp_value"] == "Analyst"
    assert row["at_risk"] is True and row["owner"] == "idp"
    assert row["overwritten_at"] is not None  # the next sync: the connection has had a push
    key = ApiKey.objects.get(owner=alice)
    assert row["local_edit_by"] == f"alice via API key {key.label}" and row["local_edit_before"] == "Analyst"
    entry = JournalEntry.objects.get(user=ada, kind=JournalEntry.Kind.LOCAL_EDIT)
    # Like the admin's (the key's owner is the actor), and it says which key did it.
    assert (entry.source, entry.actor) == (f"alice via API key {key.label}", alice)
    change = entry.changes.get()
    assert (change.attribute, change.old_value, change.new_value) == ("title", "Analyst", "Lead Analyst")


def test_a_local_edit_of_an_unmapped_attribute_is_not_at_risk(api, ada, connection):
    services.mapping_update(connection=connection, attribute="phone_mobile", state="unmapped",
                            actor=services.Actor("setup"))
    row = api.put(f"/api/v1/users/{ada.pk}/attributes/phone_mobile/", {"value": "+1 555 0100"},
                  format="json").json()
    assert (row["current"], row["at_risk"], row["owner"]) == ("+1 555 0100", False, "local")


def test_an_invalid_value_is_a_400_naming_the_field(api, ada):
    response = api.put(f"/api/v1/users/{ada.pk}/attributes/title/", {"value": "x" * 300}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "255" in body["errors"]["value"][0]
    assert not JournalEntry.objects.filter(kind=JournalEntry.Kind.LOCAL_EDIT).exists()


def test_an_unknown_attribute_is_a_404(api, ada):
    response = api.get(f"/api/v1/users/{ada.pk}/attributes/shoe_size/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_revert_puts_the_idp_value_back(api, ada):
    services.user_local_edit(user=ada, attribute="title", value="Lead", actor=services.Actor("bob"))

    row = api.post(f"/api/v1/users/{ada.pk}/attributes/title/revert/").json()

    assert (row["current"], row["at_risk"], row["local_edit_at"]) == ("Analyst", False, None)
    assert JournalEntry.objects.filter(user=ada, kind=JournalEntry.Kind.REVERT, actor__user_name="alice",
                                       source__startswith="alice via API key").exists()


def test_revert_of_a_value_the_idp_never_sent_is_a_conflict(api, ada):
    response = api.post(f"/api/v1/users/{ada.pk}/attributes/cost_center/revert/")
    assert response.status_code == 409 and response.json()["code"] == "conflict"


def test_a_local_account_has_nothing_to_revert_to(api, alice):
    assert api.post(f"/api/v1/users/{alice.pk}/attributes/title/revert/").status_code == 404


def test_user_detail_shows_every_attribute_with_owner_values_and_flag(api, ada, connection):
    services.mapping_update(connection=connection, attribute="phone_mobile", state="unmapped",
                            actor=services.Actor("setup"))
    services.user_local_edit(user=ada, attribute="title", value="Lead", actor=services.Actor("bob"))

    body = api.get(f"/api/v1/users/{ada.pk}/").json()

    rows = {r["attribute"]: r for r in body["attributes"]}
    assert rows["title"] | {"idp_received_at": None, "local_edit_at": None, "overwritten_at": None} == {
        "attribute": "title", "scim_path": "title", "owner": "idp", "current": "Lead", "idp_sent": True,
        "idp_value": "Analyst", "idp_received_at": None, "at_risk": True, "overwritten_at": None,
        "local_edit_by": "bob", "local_edit_at": None, "local_edit_before": "Analyst", "observed_from_idp": True,
    }
    assert rows["phone_mobile"]["owner"] == "local" and rows["phone_mobile"]["idp_sent"] is False
    assert rows["phone_mobile"]["observed_from_idp"] is False
    assert rows["user_name"]["owner"] == "idp"
    assert body["at_risk_count"] == 1 and body["at_risk_attributes"] == ["title"]
    assert body["next_sync"]["expected"] is True


def test_user_filters(api, ada, connection, alice):
    bea = provision(connection, "bea@example.com", title="Clerk", department="Ops")
    services.user_local_edit(user=bea, attribute="department", value="Legal", actor=services.Actor("x"))

    def names(query):
        return [u["user_name"] for u in api.get(f"/api/v1/users/?{query}").json()["results"]]

    assert names("at_risk=true") == ["bea@example.com"]
    assert names("at_risk=false") == ["ada@example.com", "alice"]
    assert names("at_risk_attribute=department") == ["bea@example.com"]
    assert names("at_risk_attribute=title") == []
    assert names(f"connection={connection.pk}") == ["ada@example.com", "bea@example.com"]
    assert names("local=true") == ["alice"]
    assert names(f"scim_id={ada.scim_id}") == ["ada@example.com"]
    assert names("search=BEA") == ["bea@example.com"]
    assert names("ordering=-user_name") == ["bea@example.com", "alice", "ada@example.com"]
    # Ties (alice and ada: no flags) fall back to the id: alice was created first.
    assert names("ordering=-at_risk_count") == ["bea@example.com", "alice", "ada@example.com"]


def test_pages_are_stable_when_the_ordering_ties(api, connection):
    for i in range(7):
        provision(connection, f"user{i}@example.com")
    # Every user has an at-risk count of 0: only the id tiebreaker orders them.
    seen = []
    for page in (1, 2, 3):
        body = api.get(f"/api/v1/users/?connection={connection.pk}&ordering=at_risk_count&page_size=3&page={page}")
        seen += [u["id"] for u in body.json()["results"]]
    assert seen == sorted(seen) and len(set(seen)) == 7


def test_bad_filter_and_page_values_get_the_error_body(api):
    response = api.get("/api/v1/users/?at_risk=perhaps&connection=1.5")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"at_risk", "connection"}
    response = api.get("/api/v1/users/?page=99")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


# --- mappings -----------------------------------------------------------------


def test_the_preview_changes_nothing_and_predicts_the_update(api, ada, connection):
    services.user_local_edit(user=ada, attribute="title", value="Lead", actor=services.Actor("bob"))
    body = {"changes": [{"attribute": "title", "state": "unmapped"}, {"attribute": "department", "state": "mapped",
                                                                      "apply": "on_create"}]}

    preview = api.post(f"/api/v1/connections/{connection.pk}/mappings/preview/", body, format="json").json()

    assert preview["applied"] is False
    assert preview["changes"][0] == {"attribute": "title", "state": "unmapped", "apply": "always",
                                     "now_at_risk": 0, "no_longer_at_risk": 1, "sync_run": None}
    assert AttributeMapping.objects.get(connection=connection, attribute="title").state == "mapped"
    assert _state(ada, "title").at_risk is True
    assert not MappingChange.objects.exists()

    applied = api.patch(f"/api/v1/connections/{connection.pk}/mappings/", body, format="json").json()

    assert applied["applied"] is True and applied["changes"] == preview["changes"]
    assert _state(ada, "title").at_risk is False
    assert MappingChange.objects.filter(actor__user_name="alice").count() == 2
    mappings = {m["attribute"]: m for m in api.get(f"/api/v1/connections/{connection.pk}/mappings/").json()}
    assert mappings["title"]["owner"] == "local" and mappings["department"]["owner"] == "idp_on_create"
    assert mappings["user_name"]["editable"] is False


def test_mapping_an_attribute_flags_differing_values_at_once(api, ada, connection):
    services.mapping_update(connection=connection, attribute="title", state="unmapped", actor=services.Actor("x"))
    services.user_local_edit(user=ada, attribute="title", value="Lead", actor=services.Actor("bob"))

    response = api.put(f"/api/v1/connections/{connection.pk}/mappings/title/", {"state": "mapped"}, format="json")

    assert response.json()["now_at_risk"] == 1
    assert api.get(f"/api/v1/users/{ada.pk}/attributes/title/").json()["at_risk"] is True


def test_changes_to_many_mappings_apply_all_or_none(api, connection):
    body = {"changes": [{"attribute": "title", "state": "unmapped"}, {"attribute": "user_name", "state": "unmapped"}]}
    response = api.patch(f"/api/v1/connections/{connection.pk}/mappings/", body, format="json")
    assert response.status_code == 400
    assert "changes.1.attribute" in response.json()["errors"]
    assert AttributeMapping.objects.get(connection=connection, attribute="title").state == "mapped"
    response = api.put(f"/api/v1/connections/{connection.pk}/mappings/active/", {"state": "unmapped"}, format="json")
    assert response.status_code == 400


def test_preset_preview_then_switch(api, ada, connection):
    services.user_local_edit(user=ada, attribute="formatted_name", value="Ada L.", actor=services.Actor("bob"))
    AttributeState.objects.filter(user=ada, attribute="formatted_name").update(idp_received_at=timezone.now(),
                                                                                at_risk=True)
    preview = api.post(f"/api/v1/connections/{connection.pk}/preset/preview/", {"preset": "okta"},
                       format="json").json()
    assert Connection.objects.get(pk=connection.pk).preset == "generic"
    changed = {c["attribute"]: c for c in preview["changes"]}
    assert changed["formatted_name"]["state"] == "unmapped" and changed["formatted_name"]["no_longer_at_risk"] == 1
    assert "title" not in changed  # okta maps it too

    applied = api.put(f"/api/v1/connections/{connection.pk}/preset/", {"preset": "okta"}, format="json").json()

    assert applied["changes"] == preview["changes"] and applied["applied"] is True
    assert Connection.objects.get(pk=connection.pk).preset == "okta"
    assert AttributeMapping.objects.get(connection=connection, attribute="formatted_name").state == "unmapped"
    assert _state(ada, "formatted_name").at_risk is False


# --- connections, tokens, catalogue -------------------------------------------


def test_create_a_connection_then_set_its_cadence(api):
    created = api.post("/api/v1/connections/", {"name": "Okta prod", "preset": "okta"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["sync_cadence"] == "00:40:00" and body["users_count"] == 0 and body["next_sync"] is None
    assert AttributeMapping.objects.filter(connection_id=body["id"], state="mapped").count() > 10

    again = api.post("/api/v1/connections/", {"name": "Okta prod"}, format="json")
    assert again.status_code == 400 and "name" in again.json()["errors"]

    cadence = api.put(f"/api/v1/connections/{body['id']}/cadence/",
                      {"sync_cadence": "PT2H", "sync_schedule": "1 00:00:00"}, format="json").json()
    assert cadence["sync_cadence"] == "02:00:00" and cadence["sync_schedule"] == "1 00:00:00"
    assert cadence["next_sync"]["expected"] is False  # the schedule is the only known next sync
    too_short = api.put(f"/api/v1/connections/{body['id']}/cadence/", {"sync_cadence": "00:00:10"}, format="json")
    assert too_short.status_code == 400


def test_tokens_show_the_secret_once_and_revoke(api, connection):
    created = api.post(f"/api/v1/connections/{connection.pk}/tokens/", {"label": "Entra"}, format="json").json()
    plaintext = created["token"]
    assert plaintext.startswith("scim_") and created["usable"] is True
    assert ScimToken.objects.get(pk=created["id"]).digest == ScimToken.digest_of(plaintext)

    listed = api.get(f"/api/v1/connections/{connection.pk}/tokens/").json()["results"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert plaintext not in str(listed) and "token" not in listed[0]

    revoked = api.post(f"/api/v1/connections/{connection.pk}/tokens/{created['id']}/revoke/").json()
    assert revoked["usable"] is False and revoked["revoked_at"]
    other = token_create(connection=Connection.objects.create(name="other"))[0]
    assert api.post(f"/api/v1/connections/{connection.pk}/tokens/{other.pk}/revoke/").status_code == 404


def test_the_catalogue_lists_builtin_and_custom_attributes(api, connection):
    created = api.post("/api/v1/attributes/", {"name": "badgeNumber", "description": "Door badge"}, format="json")
    assert created.status_code == 201
    assert created.json()["scim_path"] == "urn:ietf:params:scim:schemas:extension:scimsync:2.0:User:badgeNumber"

    catalogue = {a["short_name"]: a for a in api.get("/api/v1/attributes/").json()}
    assert catalogue["department"]["scim_path"].endswith("enterprise:2.0:User:department")
    assert catalogue["user_name"]["always_idp"] is True
    assert catalogue["custom:badgeNumber"] == {**created.json(), "description": "Door badge"}
    mapping = api.get(f"/api/v1/connections/{connection.pk}/mappings/custom:badgeNumber/").json()
    assert mapping["owner"] == "idp"  # the generic preset maps custom attributes too
    assert api.post("/api/v1/attributes/", {"name": "badgeNumber"}, format="json").status_code == 400


@pytest.mark.parametrize("name", ["BadgeNumber", "1badge", "-badge", "badge.number", "badge number", "bädge"])
def test_a_custom_attribute_name_follows_rfc_7643s_grammar_and_ignores_case(api, name):
    """RFC 7643 §2.1: ATTRNAME = ALPHA *(nameChar), nameChar = "-" / "_" / DIGIT / ALPHA; and
    attribute names are case-insensitive, so BadgeNumber is badgeNumber taken twice."""
    assert api.post("/api/v1/attributes/", {"name": "badgeNumber"}, format="json").status_code == 201
    response = api.post("/api/v1/attributes/", {"name": name}, format="json")
    assert response.status_code == 400, response.json()
    assert "name" in response.json()["errors"]
    assert api.post("/api/v1/attributes/", {"name": "badge_no-2"}, format="json").status_code == 201


# --- at-risk report, journal, lost edits --------------------------------------


def test_the_at_risk_report_in_json_and_csv(api, ada, connection):
    services.user_local_edit(user=ada, attribute="title", value="Lead", actor=services.Actor("bob"))
    services.user_local_edit(user=ada, attribute="department", value="Ops", actor=services.Actor("bob"))

    rows = api.get(f"/api/v1/at-risk/?connection={connection.pk}").json()["results"]

    assert [(r["attribute"], r["current"], r["idp_value"], r["local_edit_by_label"]) for r in rows] == [
        ("department", "Ops", "Sales", "bob"), ("title", "Lead", "Analyst", "bob"),
    ]
    assert api.get("/api/v1/at-risk/?attribute=title").json()["count"] == 1

    response = api.get("/api/v1/at-risk.csv", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert table[0][:3] == ["connection", "attribute", "scim_path"]
    assert [r[1] for r in table[1:]] == ["department", "title"]
    assert table[2][5:7] == ["Lead", "Analyst"]


def test_the_csv_never_carries_a_live_formula(api, ada):
    """OWASP CSV injection: a value from the IdP or an editor that starts like a formula
    is written with a leading apostrophe, so a spreadsheet shows it as text."""
    services.user_local_edit(user=ada, attribute="title", value='=HYPERLINK("http://evil","x")',
                             actor=services.Actor("bob"))
    response = api.get("/api/v1/at-risk.csv", HTTP_ACCEPT="text/csv")
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert table[1][5:7] == ['\'=HYPERLINK("http://evil","x")', "Analyst"]


def test_the_journal_per_user_and_per_connection(api, ada, connection):
    services.user_local_edit(user=ada, attribute="title", value="Lead", actor=services.Actor("bob"))
    kinds = [e["kind"] for e in api.get(f"/api/v1/users/{ada.pk}/journal/").json()["results"]]
    assert kinds == ["local_edit", "create"]
    by_connection = api.get(f"/api/v1/connections/{connection.pk}/journal/?kind=create").json()["results"]
    assert [e["user_name"] for e in by_connection] == ["ada@example.com"]
    assert by_connection[0]["changes"][0]["attribute"] in {"title", "department", "user_name"}


def test_lost_edits_and_restore(api, ada):
    services.user_local_edit(user=ada, attribute="title", value="Lead", actor=services.Actor("bob"))
    services.user_sync(user=ada, actor=services.Actor("sync run 1"))

    lost = api.get("/api/v1/lost-edits/?restored=false").json()["results"]
    assert [(e["attribute"], e["old_value"], e["new_value"], e["lost_edit_by_label"]) for e in lost] == [
        ("title", "Lead", "Analyst", "bob")]

    restored = api.post(f"/api/v1/lost-edits/{lost[0]['id']}/restore/").json()

    assert restored["restored_at"] is not None
    row = api.get(f"/api/v1/users/{ada.pk}/attributes/title/").json()
    assert (row["current"], row["at_risk"]) == ("Lead", True)
    assert api.get("/api/v1/lost-edits/?restored=true").json()["count"] == 1
    assert api.post(f"/api/v1/lost-edits/{lost[0]['id']}/restore/").status_code == 409


# --- sync runs ----------------------------------------------------------------


def test_sync_now_for_a_user_runs_and_reports_progress(api, ada, django_capture_on_commit_callbacks):
    services.user_local_edit(user=ada, attribute="title", value="Lead", actor=services.Actor("bob"))

    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/sync-runs/", {"users": [ada.pk]}, format="json")

    assert created.status_code == 201
    run = api.get(f"/api/v1/sync-runs/{created.json()['id']}/").json()
    assert {"state": "succeeded", "users_total": 1, "users_done": 1, "progress": 1.0,
            "attributes_overwritten": 1, "lost_edits": 1, "user_ids": [ada.pk]}.items() <= run.items()
    assert api.get(f"/api/v1/users/{ada.pk}/attributes/title/").json()["current"] == "Analyst"


def test_sync_now_input_is_checked(api, ada, alice, connection):
    other = Connection.objects.create(name="other")
    for body, field in [({}, "non_field_errors"), ({"users": [alice.pk]}, "users"), ({"users": [999999]}, "users"),
                        ({"connection": other.pk, "users": [ada.pk]}, "users"), ({"connection": 999999}, "connection")]:
        response = api.post("/api/v1/sync-runs/", body, format="json")
        assert response.status_code == 400 and field in response.json()["errors"], (body, response.json())
    assert not SyncRun.objects.exists()


def test_retry_only_failed_runs_and_approve_only_held_ones(api, connection, ada):
    failed = SyncRun.objects.create(connection=connection, user_ids=[ada.pk], state=SyncRun.State.FAILED)
    retried = api.post(f"/api/v1/sync-runs/{failed.pk}/retry/")
    assert retried.status_code == 201
    assert retried.json()["reason"] == "retry" and retried.json()["user_ids"] == [ada.pk]
    assert api.post(f"/api/v1/sync-runs/{retried.json()['id']}/retry/").status_code == 409

    held = SyncRun.objects.create(connection=connection, state=SyncRun.State.HELD)
    approved = api.post(f"/api/v1/sync-runs/{held.pk}/approve/").json()
    assert approved["state"] in {"queued", "running", "succeeded"} and approved["approved_by"] is not None
    assert api.post(f"/api/v1/sync-runs/{held.pk}/approve/").status_code == 409
    states = [r["state"] for r in api.get(f"/api/v1/sync-runs/?connection={connection.pk}&state=failed").json()[
        "results"]]
    assert states == ["failed"]


def test_journal_change_rows_cannot_be_restored_unless_lost(api, ada):
    services.user_local_edit(user=ada, attribute="title", value="Lead", actor=services.Actor("bob"))
    edit = JournalChange.objects.get(outcome=JournalChange.Outcome.EDITED)
    assert api.post(f"/api/v1/lost-edits/{edit.pk}/restore/").status_code == 404


def test_expired_tokens_show_as_unusable(api, connection):
    token_create(connection=connection, label="old", expires_at=timezone.now() - timedelta(days=1))
    assert [t["usable"] for t in api.get(f"/api/v1/connections/{connection.pk}/tokens/").json()["results"]] == [False]


# --- the decoded request log, the dry run of a held run -------------------------


def test_the_request_log_shows_what_the_idp_sent_decoded(api, connection):
    """Issue 5: "the decoded request log", as the connection's admin page shows it."""
    ScimRequestLog.objects.create(connection=connection, method="PATCH", path="/scim/v2/Users/x", status=200,
                                  decoded=[{"attribute": "title", "value": "Analyst", "outcome": "applied"},
                                           {"attribute": "phone_mobile", "value": "+1", "outcome": "kept_local"}])
    ScimRequestLog.objects.create(connection=connection, method="POST", path="/scim/v2/Users", status=409,
                                  detail="userName taken")
    ScimRequestLog.objects.create(connection=Connection.objects.create(name="other"), method="POST",
                                  path="/scim/v2/Users", status=201)

    rows = api.get(f"/api/v1/connections/{connection.pk}/requests/").json()["results"]

    assert [(r["method"], r["status"], r["failed"]) for r in rows] == [("POST", 409, True), ("PATCH", 200, False)]
    assert rows[1]["decoded"][1] == {"attribute": "phone_mobile", "value": "+1", "outcome": "kept_local"}
    failed = api.get(f"/api/v1/connections/{connection.pk}/requests/?failed=true").json()["results"]
    assert [r["detail"] for r in failed] == ["userName taken"]


@pytest.mark.django_db(transaction=True)
def test_a_scim_write_appears_in_the_request_log(api, connection, token, live_server):
    """The log the API serves is the one the SCIM middleware writes (over HTTP, as an IdP would)."""
    import requests

    requests.post(f"{live_server.url}/scim/v2/Users", timeout=10,
                  headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
                  json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "zed@example.com",
                        "title": "Engineer"})
    rows = api.get(f"/api/v1/connections/{connection.pk}/requests/").json()["results"]
    assert rows[0]["method"] == "POST" and rows[0]["status"] == 201
    assert {"attribute": "title", "value": "Engineer", "outcome": "applied"} in rows[0]["decoded"]


def test_a_held_run_shows_its_dry_run_before_approval(api, ada, connection):
    services.user_local_edit(user=ada, attribute="title", value="Lead", actor=services.Actor("bob"))
    held = SyncRun.objects.create(connection=connection, state=SyncRun.State.HELD)

    rows = api.get(f"/api/v1/sync-runs/{held.pk}/dry-run/").json()

    assert rows == [{"user": ada.pk, "user_name": "ada@example.com", "attribute": "title", "idp_value": "Analyst",
                     "local_edit_by": "bob", "local_edit_at": rows[0]["local_edit_at"]}]
    assert _state(ada, "title").at_risk is True  # looking changes nothing
    failed = SyncRun.objects.create(connection=connection, state=SyncRun.State.FAILED)
    assert api.get(f"/api/v1/sync-runs/{failed.pk}/dry-run/").status_code == 409


# --- ETags ----------------------------------------------------------------------


def test_details_answer_304_while_unchanged(api, ada, connection):
    """Issue 5: "ETags on details where they help": a poller re-reads nothing that did not change."""
    for url in (f"/api/v1/users/{ada.pk}/", f"/api/v1/users/{ada.pk}/attributes/title/",
                f"/api/v1/connections/{connection.pk}/", f"/api/v1/connections/{connection.pk}/mappings/title/"):
        first = api.get(url)
        etag = first["ETag"]
        assert etag.startswith('"') and first.status_code == 200, url
        again = api.get(url, HTTP_IF_NONE_MATCH=etag)
        assert again.status_code == 304 and not again.content and again["ETag"] == etag, url

    etag = api.get(f"/api/v1/users/{ada.pk}/")["ETag"]
    services.mapping_update(connection=connection, attribute="department", state="unmapped",
                            actor=services.Actor("x"))
    # A mapping change moves what the page shows (the owner), though the user row is untouched.
    assert api.get(f"/api/v1/users/{ada.pk}/", HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_a_sync_run_poller_gets_304_until_the_run_moves(api, connection):
    run = SyncRun.objects.create(connection=connection, state=SyncRun.State.QUEUED, users_total=2)
    etag = api.get(f"/api/v1/sync-runs/{run.pk}/")["ETag"]
    assert api.get(f"/api/v1/sync-runs/{run.pk}/", HTTP_IF_NONE_MATCH=etag).status_code == 304
    SyncRun.objects.filter(pk=run.pk).update(state=SyncRun.State.RUNNING, users_done=1)
    moved = api.get(f"/api/v1/sync-runs/{run.pk}/", HTTP_IF_NONE_MATCH=etag)
    assert moved.status_code == 200 and moved.json()["progress"] == 0.5


def test_if_match_keeps_an_edit_from_overwriting_one_it_has_not_seen(api, ada):
    url = f"/api/v1/users/{ada.pk}/attributes/title/"
    etag = api.get(url)["ETag"]
    services.user_local_edit(user=ada, attribute="title", value="Colleague's edit", actor=services.Actor("bob"))

    stale = api.put(url, {"value": "Mine"}, format="json", HTTP_IF_MATCH=etag)

    assert stale.status_code == 412 and stale.json()["code"] == "precondition_failed"
    assert api.get(url).json()["current"] == "Colleague's edit"
    fresh = api.get(url)["ETag"]
    done = api.put(url, {"value": "Mine"}, format="json", HTTP_IF_MATCH=fresh)
    assert done.status_code == 200 and done.json()["current"] == "Mine"
    assert done["ETag"] == api.get(url)["ETag"]  # the answer's ETag is the new version's


# --- strict input: wrong types, empty filters, bad pages and orderings are 400s ---


def test_wrong_json_types_are_refused_not_coerced(api, ada, connection):
    for url, body, field in [
        ("/api/v1/attributes/", {"name": "badge", "description": 0}, "description"),
        ("/api/v1/sync-runs/", {"users": [str(ada.pk)]}, "users"),
        ("/api/v1/sync-runs/", {"connection": str(connection.pk)}, "connection"),
        ("/api/v1/connections/", {"name": 12}, "name"),
    ]:
        response = api.post(url, body, format="json")
        assert response.status_code == 400 and field in response.json()["errors"], (url, body, response.json())
    assert not SyncRun.objects.exists()


def test_bad_pages_orderings_and_empty_filters_are_400s(api, ada):
    for query, field in [("page_size=all", "page_size"), ("page=0", "page"), ("ordering=shoe_size", "ordering"),
                         ("connection=", "connection"), ("scim_id=", "scim_id")]:
        response = api.get(f"/api/v1/users/?{query}")
        assert response.status_code == 400 and field in response.json()["errors"], query
    assert "user_name" in api.get("/api/v1/users/?ordering=shoe_size").json()["errors"]["ordering"][0]
    assert len(api.get("/api/v1/users/?page_size=500").json()["results"]) == 2  # capped at 200, not refused


def test_an_unknown_url_answers_the_error_body_to_every_method(client):
    """Not Django's HTML CSRF page for a PUT to a mistyped URL."""
    for method in ("get", "put", "post", "delete"):
        response = getattr(client, method)("/api/v1/users/not-an-id/attributes/title/")
        assert response.status_code == 404 and response.json()["code"] == "not_found", method


def test_a_method_an_endpoint_does_not_have_is_405_not_403(api, client_as, bob):
    """A script calling DELETE on a list learns the method is wrong, not that it lacks a permission."""
    for client in (api, client_as(bob)):
        response = client.delete("/api/v1/users/")
        assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


def test_options_describes_an_endpoint_to_whoever_may_call_it(api, client_as, charlie, ada):
    url = f"/api/v1/users/{ada.pk}/attributes/title/revert/"  # POST only
    assert api.options(url).status_code == 200
    assert client_as(charlie).options(url).status_code == 403


def test_the_api_root_lists_the_entry_points(api):
    body = api.get("/api/v1/").json()
    assert body["users"] == "http://testserver/api/v1/users/"
    assert body["at_risk_csv"].endswith("/api/v1/at-risk.csv") and body["schema"].endswith("/api/schema/")
    for url in (body["connections"], body["sync_runs"], body["lost_edits"]):
        assert api.get(url).status_code == 200, url
