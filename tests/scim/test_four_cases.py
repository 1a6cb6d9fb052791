"""DESIGN.md's four cases end to end: SCIM over HTTP, the admin page, the next push, the journal."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from scimsync.models import AttributeState, JournalChange
from scimsync.sync import services
from tests.conftest import ENTERPRISE, USER_SCHEMA
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)


def _create(scim, **extra):
    body = {"schemas": [USER_SCHEMA, ENTERPRISE], "userName": "alex.doe@example.com", **extra}
    response = scim.post("/Users", body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _admin_page(alice, user) -> str:
    client = Client()
    client.force_login(alice)
    response = client.get(f"/admin/users/user/{user.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def _row(page: str, attribute: str) -> tuple[str, str]:
    """The ownership-table row of one attribute: (its class, its text without tags)."""
    match = re.search(rf'<tr class="([^"]*)" data-attribute="{attribute}">(.*?)</tr>', page, re.S)
    assert match, f"no ownership row for {attribute}"
    return match.group(1), " ".join(re.sub(r"<[^>]+>", " ", match.group(2)).split())


def _state(user, attribute) -> AttributeState:
    return AttributeState.objects.get(user=user, attribute=attribute)


def test_case1_mapped_attribute_changed_in_idp_is_overwritten(scim, alice):
    """DESIGN.md case 1: the IdP pushes a mapped attribute; the product takes its value."""
    user_id = _create(scim, **{ENTERPRISE: {"department": "Sales"}})
    response = scim.patch(f"/Users/{user_id}", [
        {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Finance"}
    ])
    assert response.status_code == 200
    user = User.objects.get(scim_id=user_id)
    assert user.department == "Finance"
    assert not _state(user, "department").at_risk
    page = _admin_page(alice, user)
    css, text = _row(page, "department")
    assert css == "" and text.startswith("department IdP-owned Finance Finance")
    change = JournalChange.objects.get(entry__user=user, entry__kind="push", attribute="department")
    assert (change.old_value, change.new_value, change.lost_edit) == ("Sales", "Finance", False)


def test_case2_local_edit_of_mapped_attribute_is_flagged_then_overwritten_and_journaled(scim, alice):
    """DESIGN.md case 2: allowed, flagged at once with the IdP value and next sync; the next push
    for the user (even one about another attribute) overwrites it and journals the lost edit."""
    user_id = _create(scim, title="Analyst", **{ENTERPRISE: {"department": "Sales"}})
    user = User.objects.get(scim_id=user_id)
    services.user_local_edit(user=user, attribute="title", value="Lead Analyst", actor=services.Actor.person(alice))

    assert _state(user, "title").at_risk
    page = _admin_page(alice, user)
    css, text = _row(page, "title")
    assert css == "at-risk"
    assert text.startswith("title IdP-owned Lead Analyst Analyst ⚠ At risk")
    assert "(expected)" in text  # the next-sync time, an estimate from the cadence
    assert "edited by alice" in text
    # SCIM GET shows the product's value, so the IdP sees the difference.
    assert scim.get(f"/Users/{user_id}").json()["title"] == "Lead Analyst"

    response = scim.patch(f"/Users/{user_id}", [
        {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Finance"}
    ])
    assert response.status_code == 200
    assert response.json()["title"] == "Analyst"
    user.refresh_from_db()
    assert user.title == "Analyst" and user.department == "Finance"
    assert not _state(user, "title").at_risk

    lost = JournalChange.objects.get(entry__user=user, attribute="title", lost_edit=True)
    assert (lost.old_value, lost.new_value, lost.lost_edit_by_label) == ("Lead Analyst", "Analyst", "alice")
    assert "LOST EDIT by alice" in _admin_page(alice, user)


def test_case3_unmapped_attribute_from_idp_is_recorded_not_applied(scim, connection, alice):
    """DESIGN.md case 3: the product keeps its value; the IdP value is recorded; nothing flagged."""
    services.mapping_update(connection=connection, attribute="phone_mobile", state="unmapped",
                            actor=services.Actor.person(alice))
    user_id = _create(scim)
    user = User.objects.get(scim_id=user_id)
    services.user_local_edit(user=user, attribute="phone_mobile", value="+1 555 0100", actor=services.Actor("alice"))
    scim.patch(f"/Users/{user_id}", [
        {"op": "Replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555 0999"}
    ])
    user.refresh_from_db()
    state = _state(user, "phone_mobile")
    assert user.phone_mobile == "+1 555 0100"
    assert state.idp_value == "+1 555 0999" and not state.at_risk
    assert JournalChange.objects.filter(entry__user=user, attribute="phone_mobile", outcome="kept_local").exists()


def test_case4_unmapped_local_edit_survives_put_and_sync(scim, connection, alice):
    """DESIGN.md case 4 and its PUT rule: an unmapped attribute missing from a PUT keeps its local
    value; a mapped attribute missing from the PUT is cleared."""
    services.mapping_update(connection=connection, attribute="phone_mobile", state="unmapped",
                            actor=services.Actor("alice"))
    user_id = _create(scim, title="Analyst")
    user = User.objects.get(scim_id=user_id)
    services.user_local_edit(user=user, attribute="phone_mobile", value="+1 555 0100", actor=services.Actor("alice"))
    response = scim.put(f"/Users/{user_id}", {"schemas": [USER_SCHEMA], "userName": "alex.doe@example.com"})
    assert response.status_code == 200
    services.user_sync(user=user, actor=services.Actor("test sync"))
    user.refresh_from_db()
    assert user.phone_mobile == "+1 555 0100"
    assert user.title == ""  # mapped and omitted from the PUT: sent empty, cleared
    assert not AttributeState.objects.filter(user=user, at_risk=True).exists()


def test_mapping_an_attribute_flags_at_once_and_unmapping_clears(scim, connection):
    """DESIGN.md: mapping makes every user whose value differs at risk before any push."""
    services.mapping_update(connection=connection, attribute="title", state="unmapped", actor=services.Actor("a"))
    ids = [_create(scim, userName=f"u{i}@example.com", title="Analyst") for i in range(3)]
    users = list(User.objects.filter(scim_id__in=ids).order_by("pk"))
    # While unmapped, the IdP's title was recorded, not applied; two admins set the IdP's value
    # by hand, one set another. Only the differing ones are at risk once title is mapped.
    for user, title in zip(users, ["Analyst", "Analyst", "Boss"]):
        services.user_local_edit(user=user, attribute="title", value=title, actor=services.Actor("a"))

    preview = services.mapping_impact_preview(connection=connection, attribute="title", state="mapped", apply="always")
    assert (preview.now_at_risk, preview.no_longer_at_risk) == (1, 0)
    assert AttributeState.objects.filter(at_risk=True).count() == 0  # the preview changed nothing

    impact = services.mapping_update(connection=connection, attribute="title", state="mapped", actor=services.Actor("a"))
    assert impact.now_at_risk == 1
    assert set(AttributeState.objects.filter(at_risk=True).values_list("user_id", flat=True)) == {users[2].pk}

    impact = services.mapping_update(connection=connection, attribute="title", state="unmapped", actor=services.Actor("a"))
    assert impact.no_longer_at_risk == 1
    assert not AttributeState.objects.filter(at_risk=True).exists()
