"""What an admin sees of this round's rules, in Chromium: a provisioned user's identifiers are
shown but not editable, a push that overwrote a local edit is named on the connection page, and
provisioned groups are shown read-only. The IdP side is real SCIM over HTTP; each test saves a
screenshot."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from mappings.models import Connection
from tests.browser.conftest import login, screenshot
from tests.browser.test_admin_four_cases import (
    ALICE_PASSWORD, edit_field, open_user, patch, provision, replace, save_and_continue,
)
from tests.conftest import ENTERPRISE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_identifiers_are_read_only_and_a_push_over_a_local_edit_is_named(
    browser_page, live_server, scim, alice
):
    """DESIGN.md: userName and externalId are always the IdP's; the IdP finds the user by them,
    so the user page shows them without an input. A local title edit, then an IdP push of the
    department only: the push puts the title back, and the connection page says whose edit it
    overwrote."""
    page, base = browser_page, live_server.url
    kim = provision(scim, "kim@example.com", title="Analyst")
    login(page, base, "alice", ALICE_PASSWORD)
    open_user(page, base, "kim@example.com")
    expect(page.locator("input[name=user_name]")).to_have_count(0)
    expect(page.locator("input[name=external_id]")).to_have_count(0)
    expect(page.locator(".field-user_name .readonly")).to_have_text("kim@example.com")
    expect(page.locator(".field-external_id .readonly")).to_have_text("ext-kim@example.com")
    screenshot(page, "user-page-identifiers-read-only")

    edit_field(page, "title", "Lead Analyst")
    patch(scim, kim, replace(f"{ENTERPRISE}:department", "Research"))

    connection = Connection.objects.get()
    page.goto(f"{base}/admin/mappings/connection/{connection.pk}/change/")
    log = page.locator("table.request-log")
    expect(log).to_contain_text("department: Research — applied")
    expect(log).to_contain_text("title: Analyst — IdP value written over alice's local edit (see Lost edits)")
    # Each request's attribute list sits in the Attributes column, not pushed past it.
    header = log.get_by_role("columnheader", name="Attributes").bounding_box()
    listed = log.locator("ul").first.bounding_box()
    assert abs(listed["x"] - header["x"]) < 30, (header, listed)
    screenshot(page, "connection-page-overwrote-local-edit")


def test_a_provisioned_group_is_shown_with_its_members_and_nothing_to_save(
    browser_page, live_server, scim, alice
):
    """A group is its IdP's alone: the admin shows it and its members, offers no save, add or
    delete, and the IdP's next push finds it as it left it."""
    page, base = browser_page, live_server.url
    kim = provision(scim, "kim@example.com")
    created = scim.post("/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                    "displayName": "Sales", "members": [{"value": kim}]})
    assert created.status_code == 201, created.text
    login(page, base, "alice", ALICE_PASSWORD)
    page.goto(f"{base}/admin/")
    page.get_by_role("link", name="Provisioned groups").click()
    expect(page.locator("#result_list")).to_contain_text("Sales")
    expect(page.get_by_role("link", name="Add provisioned group")).to_have_count(0)
    page.locator("#result_list").get_by_role("link", name="Sales").click()
    expect(page.locator("h1")).to_contain_text("View provisioned group")
    expect(page.locator("input[name=display_name]")).to_have_count(0)
    expect(page.locator("input[name=_save]")).to_have_count(0)
    expect(page.get_by_text("Delete", exact=True)).to_have_count(0)
    members = page.locator("#memberships-group")
    expect(members).to_contain_text("kim@example.com")
    expect(members).not_to_contain_text("GroupMembership object", use_inner_text=True)  # what is shown
    screenshot(page, "provisioned-group-read-only")
    assert scim.get(f"/Groups/{created.json()['id']}").json()["meta"]["version"] == 'W/"1"'


def test_a_local_accounts_name_stays_editable(browser_page, live_server, alice):
    """Only provisioned users' identifiers are the IdP's: a local account is renamed in the admin."""
    from users.models import User

    carol = User.objects.create_user("carol", "carol-password-123", is_staff=True)
    page, base = browser_page, live_server.url
    login(page, base, "alice", ALICE_PASSWORD)
    page.goto(f"{base}/admin/users/user/{carol.pk}/change/")
    page.fill("input[name=user_name]", "caroline")
    save_and_continue(page)
    carol.refresh_from_db()
    assert carol.user_name == "caroline"
