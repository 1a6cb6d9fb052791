"""Who may do what on /api/: the admin's model permissions, for API keys and sessions alike.

Personas: alice (superuser), bob (staff, view permissions only), charlie (staff, no permission),
dave (not staff, every permission), a read-only key of alice, SCIM tokens.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from mappings.models import Connection, CustomAttribute, MappingChange, ScimToken
from mappings.services import token_create
from scimsync.api.models import ApiKey
from scimsync.api.services import api_key_create, api_key_revoke
from scimsync.models import JournalEntry, ScimRequestLog, SyncRun
from scimsync.sync import services
from tests.api.conftest import Api, key_for, provision
from users.models import User


@pytest.fixture
def world(connection):
    ada = provision(connection, "ada@example.com", title="Analyst")
    services.user_local_edit(user=ada, attribute="title", value="Lead", actor=services.Actor("x"))
    services.user_sync(user=ada, actor=services.Actor("sync"))
    token, _ = token_create(connection=connection)
    failed = SyncRun.objects.create(connection=connection, state=SyncRun.State.FAILED)
    held = SyncRun.objects.create(connection=connection, state=SyncRun.State.HELD)
    lost = ada.journal.get(kind=JournalEntry.Kind.SYNC).changes.get()
    ScimRequestLog.objects.create(connection=connection, method="PATCH", path="/scim/v2/Users/x", status=200)
    return {"c": connection.pk, "u": ada.pk, "t": token.pk, "f": failed.pk, "h": held.pk, "l": lost.pk}


READS = [
    "/", "/connections/", "/connections/{c}/", "/connections/{c}/tokens/", "/connections/{c}/mappings/",
    "/connections/{c}/mappings/title/", "/connections/{c}/journal/", "/attributes/", "/users/", "/users/{u}/",
    "/users/{u}/attributes/title/", "/users/{u}/journal/", "/at-risk/", "/at-risk.csv", "/lost-edits/",
    "/sync-runs/", "/sync-runs/{f}/", "/sync-runs/{h}/dry-run/", "/connections/{c}/requests/",
]

WRITES = [
    ("POST", "/connections/", {"name": "new one"}),
    ("PUT", "/connections/{c}/cadence/", {"sync_cadence": "00:30:00"}),
    ("PUT", "/connections/{c}/preset/", {"preset": "okta"}),
    ("POST", "/connections/{c}/preset/preview/", {"preset": "okta"}),
    ("POST", "/connections/{c}/tokens/", {"label": "x"}),
    ("POST", "/connections/{c}/tokens/{t}/revoke/", None),
    ("PATCH", "/connections/{c}/mappings/", {"changes": [{"attribute": "title", "state": "unmapped"}]}),
    ("POST", "/connections/{c}/mappings/preview/", {"changes": [{"attribute": "title", "state": "unmapped"}]}),
    ("PUT", "/connections/{c}/mappings/title/", {"state": "unmapped"}),
    ("POST", "/attributes/", {"name": "badge"}),
    ("PUT", "/users/{u}/attributes/title/", {"value": "Boss"}),
    ("POST", "/users/{u}/attributes/title/revert/", None),
    ("POST", "/lost-edits/{l}/restore/", None),
    ("POST", "/sync-runs/", {"connection": "{c}"}),
    ("POST", "/sync-runs/{f}/retry/", None),
    ("POST", "/sync-runs/{h}/approve/", None),
]


def _fill(value, ids):
    if isinstance(value, str):
        return int(ids[value[1]]) if value in ("{c}", "{u}") else value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def _snapshot():
    return (JournalEntry.objects.count(), MappingChange.objects.count(), SyncRun.objects.count(),
            Connection.objects.count(), CustomAttribute.objects.count(),
            ScimToken.objects.filter(revoked_at__isnull=True).count())


def _call(client, method, path, body, ids):
    data = "" if body is None else json.dumps(_fill(body, ids))
    return client.generic(method, "/api/v1" + path.format(**ids), data=data, content_type="application/json")


@pytest.fixture
def dave(db):
    """dave: every permission, but not staff: the admin would not let him in either."""
    dave = User.objects.create_user("dave", "dave-password-123", is_staff=False)
    dave.user_permissions.set(Permission.objects.all())
    return dave


@pytest.mark.django_db
def test_alice_reads_everything(client_as, alice, world):
    client = client_as(alice)
    for path in READS:
        assert client.get("/api/v1" + path.format(**world)).status_code == 200, path


@pytest.mark.django_db
def test_alice_writes_everything(client_as, alice, world):
    client = client_as(alice)
    for method, path, body in WRITES:
        response = _call(client, method, path, body, world)
        assert response.status_code in (200, 201), (method, path, response.content)


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["alice read-only key", "bob"])
def test_viewers_read_everything_and_write_nothing(who, client_as, alice, bob, world):
    client = client_as(alice, ApiKey.Scope.READ_ONLY) if who.startswith("alice") else client_as(bob)
    for path in READS:
        assert client.get("/api/v1" + path.format(**world)).status_code == 200, path
    before = _snapshot()
    for method, path, body in WRITES:
        response = _call(client, method, path, body, world)
        assert response.status_code == 403, (method, path, response.content)
        assert response.json()["code"] == "permission_denied"
    assert _snapshot() == before
    if who.startswith("alice"):
        assert response.json()["detail"] == "This API key is read-only."


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["charlie", "dave"])
def test_owners_without_rights_get_nothing(who, client_as, charlie, dave, world):
    client = client_as(charlie if who == "charlie" else dave)
    before = _snapshot()
    for path in READS:
        assert client.get("/api/v1" + path.format(**world)).status_code == 403, path
    for method, path, body in WRITES:
        assert _call(client, method, path, body, world).status_code == 403, (method, path)
    assert _snapshot() == before


@pytest.mark.django_db
def test_a_permission_granted_opens_exactly_its_operation(client_as, charlie, world):
    charlie.user_permissions.add(Permission.objects.get(codename="view_syncrun"),
                                 Permission.objects.get(codename="sync_user"))
    client = client_as(charlie)
    assert client.get("/api/v1/sync-runs/").status_code == 200
    assert client.post("/api/v1/sync-runs/", {"connection": world["c"]}, format="json").status_code == 201
    assert client.get("/api/v1/users/").status_code == 403
    assert client.post(f"/api/v1/users/{world['u']}/attributes/title/revert/").status_code == 403


@pytest.mark.django_db
def test_missing_bad_revoked_expired_keys_and_deactivated_owners_get_401(client, alice, connection):
    def status(header):
        response = client.get("/api/v1/users/", **({"HTTP_AUTHORIZATION": header} if header else {}))
        if response.status_code >= 400:
            assert response.json()["status"] == response.status_code
        return response.status_code, response.headers.get("WWW-Authenticate")

    assert status(None) == (401, 'Api-Key realm="scimsync"')
    assert status("Api-Key sk_not-a-key")[0] == 401
    revoked_key, revoked = api_key_create(owner=alice, scope="read_write")
    api_key_revoke(key=revoked_key)
    assert status(f"Api-Key {revoked}")[0] == 401
    expired = api_key_create(owner=alice, expires_at=timezone.now() - timedelta(seconds=1))[1]
    assert status(f"Api-Key {expired}")[0] == 401
    eve = User.objects.create_superuser("eve", "eve-password-123")
    eve_key = key_for(eve)
    assert status(f"Api-Key {eve_key}")[0] == 200
    eve.is_active = False
    eve.save()
    assert status(f"Api-Key {eve_key}")[0] == 401


@pytest.mark.django_db
def test_keys_are_stored_hashed_and_record_their_last_use(client, alice):
    key, plaintext = api_key_create(owner=alice, scope="read_only")
    assert plaintext not in str(ApiKey.objects.filter(pk=key.pk).values().get())
    assert key.digest == ApiKey.digest_of(plaintext) and key.last_used_at is None
    client.get("/api/v1/attributes/", HTTP_AUTHORIZATION=f"Api-Key {plaintext}")
    assert ApiKey.objects.get(pk=key.pk).last_used_at is not None


@pytest.mark.django_db
def test_provisioned_users_cannot_own_keys(connection):
    from django.core.exceptions import ValidationError

    ada = provision(connection, "ada@example.com")
    with pytest.raises(ValidationError):
        api_key_create(owner=ada)


@pytest.mark.django_db
def test_the_command_prints_a_working_key_once(capsys, client, alice):
    call_command("create_api_key", "ALICE", "--scope", "read-write", "--label", "ci")
    plaintext = capsys.readouterr().out.strip()
    assert plaintext.startswith(ApiKey.PREFIX)
    key = ApiKey.objects.get(digest=ApiKey.digest_of(plaintext))
    assert (key.owner, key.scope, key.label) == (alice, "read_write", "ci")
    assert client.get("/api/v1/users/", HTTP_AUTHORIZATION=f"Api-Key {plaintext}").status_code == 200


# --- over HTTP: SCIM tokens, API keys on /scim/, the browser session ----------


@pytest.mark.django_db(transaction=True)
def test_scim_tokens_never_work_on_the_api(live_server, token):
    for header in (f"Bearer {token}", f"Api-Key {token}"):
        response = requests.get(f"{live_server.url}/api/v1/users/", headers={"Authorization": header}, timeout=10)
        assert response.status_code == 401, header
    assert "SCIM tokens" in response.json()["detail"] or "not valid" in response.json()["detail"]
    bearer = requests.get(f"{live_server.url}/api/v1/users/", headers={"Authorization": f"Bearer {token}"},
                          timeout=10)
    assert "SCIM tokens and do not work on /api/" in bearer.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_api_keys_never_work_on_scim(live_server, alice, token):
    key = key_for(alice)
    for header in (f"Bearer {key}", f"Api-Key {key}"):
        response = requests.get(f"{live_server.url}/scim/v2/Users", headers={"Authorization": header}, timeout=10)
        assert response.status_code == 401, header
    ok = requests.get(f"{live_server.url}/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert ok.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_browser_session_works_with_csrf(live_server, alice, connection):
    browser = requests.Session()
    login = f"{live_server.url}/admin/login/"
    browser.get(login, timeout=10)
    browser.post(login, data={"username": "alice", "password": "alice-password-123",
                              "csrfmiddlewaretoken": browser.cookies["csrftoken"], "next": "/admin/"},
                 headers={"Referer": login}, timeout=10)
    assert "sessionid" in browser.cookies

    assert browser.get(f"{live_server.url}/api/v1/users/", timeout=10).status_code == 200
    url = f"{live_server.url}/api/v1/connections/{connection.pk}/mappings/title/"
    refused = browser.put(url, json={"state": "unmapped"}, timeout=10)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    accepted = browser.put(url, json={"state": "unmapped"}, timeout=10,
                           headers={"X-CSRFToken": browser.cookies["csrftoken"], "Referer": live_server.url})
    assert accepted.status_code == 200, accepted.text
    assert MappingChange.objects.get().actor == alice


@pytest.mark.django_db(transaction=True)
def test_the_live_api_answers_json_errors_everywhere(live_server, alice):
    api = Api(live_server.url, key_for(alice))
    for path in ("/nowhere/", "/users/abc/", "/users/999999/"):
        response = api.get(path)
        assert response.status_code == 404 and response.json()["code"] == "not_found", path
    response = api.request("POST", "/connections/", data="{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["code"] == "parse_error"


@pytest.mark.django_db
def test_an_admin_creates_a_key_in_the_admin_and_sees_it_once(client, alice, bob):
    """Issue 5: keys are made by an admin; the plaintext is shown once, then only its digest is kept."""
    client.force_login(alice)
    created = client.post("/admin/scimsync/apikey/add/", {"owner": bob.pk, "label": "export", "scope": "read_only"})
    # The one-time message lives server-side: no cookie carries the secret (signed is not secret).
    assert "messages" not in created.cookies
    response = client.get(created["Location"])
    shown = [str(m) for m in response.context["messages"]]
    plaintext = next(word for m in shown for word in m.replace("<", " <").replace(">", "> ").split()
                     if word.startswith(ApiKey.PREFIX))
    assert all(plaintext not in morsel.value for morsel in client.cookies.values())
    key = ApiKey.objects.get()
    assert (key.owner, key.scope, key.digest) == (bob, "read_only", ApiKey.digest_of(plaintext))
    assert client.get(f"/admin/scimsync/apikey/{key.pk}/change/").content.count(plaintext.encode()) == 0
    api = APIClient()
    assert api.get("/api/v1/users/", HTTP_AUTHORIZATION=f"Api-Key {plaintext}").status_code == 200

    client.post("/admin/scimsync/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    assert api.get("/api/v1/users/", HTTP_AUTHORIZATION=f"Api-Key {plaintext}").status_code == 401


@pytest.mark.django_db
def test_approving_a_held_run_is_its_own_permission(client_as, world):
    """Asking for a sync (users.sync_user) does not let a run overwrite many local edits:
    approving a held run needs scimsync.approve_syncrun, in the API as in the admin."""
    erin = User.objects.create_user("erin", "erin-password-123", is_staff=True)
    erin.user_permissions.set(Permission.objects.filter(codename__in=["sync_user", "view_syncrun"]))
    url = f"/api/v1/sync-runs/{world['h']}/approve/"
    assert client_as(erin).post(url).status_code == 403
    admin = Client()
    admin.force_login(erin)
    admin.post("/admin/scimsync/syncrun/", {"action": "approve", "_selected_action": [world["h"]]})
    assert SyncRun.objects.get(pk=world["h"]).state == SyncRun.State.HELD

    erin.user_permissions.add(Permission.objects.get(codename="approve_syncrun"))
    erin = User.objects.get(pk=erin.pk)  # a fresh instance: permissions are cached per instance
    assert client_as(erin).post(url).status_code == 200
    assert SyncRun.objects.get(pk=world["h"]).state != SyncRun.State.HELD
