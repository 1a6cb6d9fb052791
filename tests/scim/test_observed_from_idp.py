"""Issue 6, per-field provenance: whether a connection's IdP has ever sent an attribute
("observed from IdP"), shown on the mapping editor, the user page and in the API.

Recorded the first time the IdP sends the attribute for any user, mapped or not;
sent empty counts as sent (DESIGN.md, "IdP value").
"""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from mappings.models import AttributeMapping
from scimsync.sync import services
from tests.api.conftest import key_for
from tests.conftest import ENTERPRISE, USER_SCHEMA
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)


def _observed(connection) -> set[str]:
    return set(AttributeMapping.objects.filter(connection=connection, observed_at__isnull=False)
               .values_list("attribute", flat=True))


def test_the_first_push_of_an_attribute_marks_it_observed_for_the_connection(scim, connection, alice):
    services.mapping_update(connection=connection, attribute="phone_mobile", state="unmapped",
                            actor=services.Actor("alice"))
    created = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "ada", "title": "Analyst",
                                   "phoneNumbers": [{"type": "mobile", "value": "555"}]})
    assert created.status_code == 201, created.text
    # title (mapped) and phone_mobile (unmapped, recorded only) were sent; department never.
    assert {"title", "phone_mobile"} <= _observed(connection)
    assert "department" not in _observed(connection)
    first = AttributeMapping.objects.get(connection=connection, attribute="title").observed_at

    patched = scim.patch(f"/Users/{created.json()['id']}", [
        {"op": "replace", "path": f"{ENTERPRISE}:department", "value": None},  # sent empty
        {"op": "replace", "path": "title", "value": "Lead"}])
    assert patched.status_code == 200, patched.text
    assert "department" in _observed(connection)
    assert AttributeMapping.objects.get(connection=connection, attribute="title").observed_at == first

    # The mapping editor, the user page and the API say so.
    admin = Client()
    admin.force_login(alice)
    editor = admin.get(f"/admin/mappings/connection/{connection.pk}/mappings/").content.decode()
    title_row = editor[editor.index('id="mapping-title"'):].split("</tr>")[0]
    cost_row = editor[editor.index('id="mapping-cost_center"'):].split("</tr>")[0]
    assert "yes, since" in title_row and "not yet" in cost_row

    user = User.objects.get(user_name="ada")
    services.user_local_edit(user=user, attribute="cost_center", value="CC-9", actor=services.Actor("alice"))
    page = admin.get(f"/admin/users/user/{user.pk}/change/").content.decode()
    cost = page[page.index('data-attribute="cost_center"'):].split("</tr>")[0]
    assert "never sent (not observed from this IdP)" in cost

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key_for(alice)}")
    mappings = {m["attribute"]: m for m in api.get(f"/api/v1/connections/{connection.pk}/mappings/").json()}
    assert mappings["title"]["observed_at"] is not None and mappings["cost_center"]["observed_at"] is None
    rows = {r["attribute"]: r for r in api.get(f"/api/v1/users/{user.pk}/").json()["attributes"]}
    assert rows["title"]["observed_from_idp"] and rows["department"]["observed_from_idp"]
    assert not rows["cost_center"]["observed_from_idp"]


def test_only_what_the_request_names_marks_an_attribute_observed(scim, connection):
    """"Observed from IdP" tells whether the IdP sends an attribute at all. A PUT that leaves
    an attribute out records it as sent empty (DESIGN.md, "IdP value"), and an emails array
    of one type empties the others, but neither shows that the IdP sends those: an Okta
    connection (PUT on every update) would otherwise call every attribute observed."""
    created = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "ada",
                                   "emails": [{"type": "work", "value": "ada@example.com"}],
                                   "name": {"givenName": "Ada"}})
    assert created.status_code == 201, created.text
    # (userName, externalId and active have no mapping row: they are always the IdP's.)
    assert _observed(connection) == {"email_work", "given_name"}

    replaced = scim.put(f"/Users/{created.json()['id']}", {
        "schemas": [USER_SCHEMA, ENTERPRISE], "userName": "ada", "title": None,
        "phoneNumbers": [{"type": "mobile", "value": "555"}], ENTERPRISE: {"costCenter": "CC-1"}})
    assert replaced.status_code == 200, replaced.text
    # Named, sent empty included (title: null); not the omitted ones (email_work now
    # sent empty stays observed from before; phone_work, department... stay unobserved).
    assert _observed(connection) == {"email_work", "given_name", "title", "phone_mobile", "cost_center"}

    patched = scim.patch(f"/Users/{created.json()['id']}", [
        {"op": "Replace", "path": "emails", "value": [{"type": "home", "value": "ada@home.example"}]},
        {"op": "remove", "path": 'phoneNumbers[type eq "fax"]'},
        {"op": "replace", "path": "name.familyName", "value": None}])
    assert patched.status_code == 200, patched.text
    assert _observed(connection) - {"email_work", "given_name", "title", "phone_mobile", "cost_center"} == {
        "email_home", "phone_fax", "family_name"}
