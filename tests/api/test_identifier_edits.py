"""userName and externalId of a provisioned user are how its IdP finds it, and are not edited locally.

DESIGN.md: userName, externalId and active are always IdP-owned for provisioned users. An IdP looks
a user up by userName (or externalId) before every write (FC-29, FC-22); renamed in the product,
the lookup misses and the IdP creates the user again, after which every push to the first one
fails on the taken name. Found by a newcomer trying the product: the admin and the API both let
an admin rename a provisioned user, and a revert then answered 500.
"""

from __future__ import annotations

import pytest

from scimsync.models import AttributeState, JournalEntry
from scimsync.sync import services
from scimsync.sync.values import InvalidValue
from tests.api.conftest import provision
from tests.conftest import logged_in
from users.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(connection):
    return provision(connection, "ada@example.com", external_id="ext-ada", active=True, title="Analyst")


@pytest.mark.parametrize("attribute", ["user_name", "external_id"])
def test_the_service_refuses_a_local_edit_of_an_identifier(ada, attribute):
    with pytest.raises(InvalidValue, match="how the IdP finds this user"):
        services.user_local_edit(user=ada, attribute=attribute, value="renamed", actor=services.Actor("alice"))
    ada.refresh_from_db()
    assert (ada.user_name, ada.external_id) == ("ada@example.com", "ext-ada")
    assert not JournalEntry.objects.filter(kind=JournalEntry.Kind.LOCAL_EDIT).exists()


def test_active_and_a_local_accounts_name_stay_editable(ada, alice):
    # Deactivating a provisioned user at once is an admin's emergency brake: kept, flagged at risk.
    assert services.user_local_edit(user=ada, attribute="active", value=False, actor=services.Actor("alice"))
    assert AttributeState.objects.get(user=ada, attribute="active").at_risk
    assert services.user_local_edit(user=alice, attribute="user_name", value="alice2", actor=services.Actor("alice"))


@pytest.mark.parametrize("attribute", ["user_name", "external_id"])
def test_the_api_answers_400_naming_why(client_as, alice, ada, attribute):
    response = client_as(alice).put(f"/api/v1/users/{ada.pk}/attributes/{attribute}/", {"value": "x"},
                                    format="json")
    assert response.status_code == 400
    assert "how the IdP finds this user" in response.json()["errors"]["value"][0]


def test_the_admin_shows_identifiers_of_a_provisioned_user_read_only(alice, ada):
    page = logged_in(alice).get(f"/admin/users/user/{ada.pk}/change/").content.decode()
    assert 'name="user_name"' not in page and 'name="external_id"' not in page
    assert 'name="title"' in page  # other mapped attributes stay editable, and flagged
    local = logged_in(alice).get(f"/admin/users/user/{alice.pk}/change/").content.decode()
    assert 'name="user_name"' in local


def _legacy_renamed_with_a_duplicate(connection, ada) -> User:
    """What earlier versions allowed: ada renamed locally, and the IdP's lookup of her name then
    missing, so that it created her again."""
    state = AttributeState.objects.get(user=ada, attribute="user_name")
    state.local_edit_by_label, state.at_risk = "alice", True
    state.local_edit_at = state.idp_received_at
    state.save()
    User.objects.filter(pk=ada.pk).update(user_name="ada.local", user_name_key="ada.local")
    return provision(connection, "ada@example.com", external_id="ext-ada")


def test_reverting_a_legacy_rename_whose_name_was_taken_meanwhile_is_a_409_not_a_500(client_as, alice,
                                                                                    connection, ada):
    _legacy_renamed_with_a_duplicate(connection, ada)
    response = client_as(alice).post(f"/api/v1/users/{ada.pk}/attributes/user_name/revert/")
    assert response.status_code == 409
    assert "taken by another user of this connection" in response.json()["detail"]
    ada.refresh_from_db()
    assert ada.user_name == "ada.local"  # nothing changed
    assert AttributeState.objects.get(user=ada, attribute="user_name").at_risk


def test_the_admins_revert_of_it_says_why_instead_of_failing(alice, connection, ada):
    _legacy_renamed_with_a_duplicate(connection, ada)
    response = logged_in(alice).post(f"/admin/users/user/{ada.pk}/revert/", {"attribute": "user_name"},
                                     follow=True)
    assert response.status_code == 200
    assert "Not reverted: userName:" in response.content.decode()


def test_a_push_that_cannot_restore_the_name_says_userName_is_taken(client, token, connection, ada):
    """RFC 7644 §3.12: 409 uniqueness, and the detail names what is taken, so an IdP operator
    sees why every push to this user fails (a push re-asserts the IdP's userName, DESIGN.md)."""
    _legacy_renamed_with_a_duplicate(connection, ada)
    response = client.patch(
        f"/scim/v2/Users/{ada.scim_id}",
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
         "Operations": [{"op": "Replace", "path": "title", "value": "Lead"}]},
        content_type="application/scim+json", HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 409
    body = response.json()
    assert (body["status"], body["scimType"]) == ("409", "uniqueness")
    assert body["detail"] == "userName is already taken by another user of this connection"


@pytest.mark.parametrize("name", ["", "   ", "BOB"])
def test_a_local_accounts_rename_to_a_blank_or_taken_name_is_a_400(client_as, alice, name):
    """Found by a break-it helper: a taken name was a 500 (the unique constraint), a blank one
    was stored. Names compare as sign-in compares them (case-insensitively)."""
    User.objects.create_user("bob", "bob-password-123")
    response = client_as(alice).put(f"/api/v1/users/{alice.pk}/attributes/user_name/", {"value": name},
                                    format="json")
    assert response.status_code == 400, response.content
    alice.refresh_from_db()
    assert alice.user_name == "alice"
