"""Tenancy and authentication: a token sees only its connection; local accounts are unreachable."""

from __future__ import annotations

import pytest

from mappings.models import ScimToken
from mappings.services import token_revoke
from tests.conftest import USER_SCHEMA
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alex_id(scim):
    response = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "alex@example.com"})
    assert response.status_code == 201
    return response.json()["id"]


@pytest.fixture
def group_id(scim, alex_id):
    response = scim.post("/Groups", {"displayName": "Sales", "members": [{"value": alex_id}]})
    assert response.status_code == 201
    return response.json()["id"]


def test_other_connection_gets_404_for_users_and_groups(other_scim, alex_id, group_id):
    for path in (f"/Users/{alex_id}", f"/Groups/{group_id}"):
        assert other_scim.get(path).status_code == 404
        assert other_scim.patch(path, [{"op": "replace", "path": "displayName", "value": "x"}]).status_code == 404
        assert other_scim.delete(path).status_code == 404
    listed = other_scim.get("/Users", params={"filter": 'userName eq "alex@example.com"'}).json()
    assert listed["totalResults"] == 0
    assert User.objects.filter(scim_id=alex_id).exists()


def test_other_connection_cannot_add_foreign_users_to_its_groups(other_scim, alex_id):
    response = other_scim.post("/Groups", {"displayName": "Theirs", "members": [{"value": alex_id}]})
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidValue"


def test_same_user_name_in_two_connections_are_two_users(scim, other_scim, alex_id):
    response = other_scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "alex@example.com"})
    assert response.status_code == 201
    assert response.json()["id"] != alex_id


def test_local_accounts_are_out_of_reach(scim, alice):
    """A local admin (no connection) is invisible to every SCIM call."""
    assert scim.get(f"/Users/{alice.scim_id}").status_code == 404
    assert scim.get("/Users", params={"filter": 'userName eq "alice"'}).json()["totalResults"] == 0
    assert scim.put(f"/Users/{alice.scim_id}", {"schemas": [USER_SCHEMA], "userName": "alice"}).status_code == 404
    assert scim.delete(f"/Users/{alice.scim_id}").status_code == 404
    # Provisioning the same userName creates a separate provisioned user; alice is untouched.
    assert scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "alice", "active": False}).status_code == 201
    alice.refresh_from_db()
    assert alice.is_active and alice.connection_id is None and alice.is_superuser


def test_revoked_token_gets_401(scim, connection, alex_id):
    token_revoke(token=ScimToken.objects.get(connection=connection))
    response = scim.get(f"/Users/{alex_id}")
    assert response.status_code == 401
    # RFC 6750 §3.1: a token that was sent but does not work is "invalid_token".
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="scimsync", error="invalid_token"'
    assert response.json() == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "401",
        "detail": "The bearer token is not valid, expired or revoked",
    }


def test_a_request_without_a_token_gets_a_challenge_without_an_error_code(scim):
    """RFC 6750 §3.1: a request that lacks authentication gets the challenge, and SHOULD NOT
    carry an error code; RFC 7644 §3.12 body as for every error."""
    response = scim.get("/Users", auth=False)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="scimsync"'
    assert response.json()["status"] == "401"


def test_tokens_are_stored_hashed_and_record_last_use(scim, connection, token):
    stored = ScimToken.objects.get(connection=connection)
    assert token not in (stored.digest, stored.hint) and len(stored.digest) == 64
    assert stored.last_used_at is None
    assert scim.get("/ServiceProviderConfig").status_code == 200
    stored.refresh_from_db()
    assert stored.last_used_at is not None


def test_local_accounts_cannot_sign_in_through_a_provisioned_name(client, scim):
    """Provisioned users sign in through their IdP; no password login is possible for them."""
    scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "mallory", "password": "Secret-123456"})
    assert not client.login(username="mallory", password="Secret-123456")
