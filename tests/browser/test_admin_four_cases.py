"""DESIGN.md's four cases, walked by an admin through the real admin in Chromium.

The IdP side is real SCIM over HTTP to the live server (the `scim` fixture);
the product side is a person clicking in the admin. Assertions are on what the
admin sees in the page; the database is only read to confirm that a refused
request changed nothing.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from scimsync.models import AttributeState
from tests.browser.conftest import login, screenshot
from tests.conftest import ENTERPRISE, USER_SCHEMA
from users.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ALICE_PASSWORD = "alice-password-123"  # tests/conftest.py's `alice`
BOB_PASSWORD = "bob-password-123"
DEPARTMENT_PATH = f"{ENTERPRISE}:department"


# --- the IdP side: real SCIM requests -------------------------------------------------


def provision(scim, user_name: str, *, title: str = "Analyst", department: str = "Sales") -> str:
    """POST a user as an IdP would; return its SCIM id."""
    body = {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": user_name,
        "externalId": f"ext-{user_name}",
        "active": True,
        "displayName": user_name.split("@")[0].title(),
        "title": title,
        ENTERPRISE: {"department": department},
    }
    response = scim.post("/Users", body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def patch(scim, scim_id: str, *operations: dict) -> None:
    response = scim.patch(f"/Users/{scim_id}", list(operations))
    assert response.status_code in (200, 204), response.text


def replace(path: str, value) -> dict:
    """An Entra-style PATCH operation (capitalised op name)."""
    return {"op": "Replace", "path": path, "value": value}


# --- the admin side: a person in Chromium ---------------------------------------------


def open_user(page, base: str, user_name: str) -> None:
    """Find the user in the admin list by searching, and open their page."""
    page.goto(f"{base}/admin/users/user/?q={user_name}")
    page.locator("#result_list").get_by_role("link", name=user_name, exact=True).click()
    page.wait_for_url(re.compile(r"/admin/users/user/\d+/change/"))
    expect(page.locator("table.ownership")).to_be_visible()


def save_and_continue(page) -> None:
    page.click("input[name=_continue]")
    expect(page.locator("ul.messagelist li.success")).to_contain_text("was changed successfully")


def edit_field(page, field: str, value: str, *, idp_owned: bool = True) -> list[str]:
    """Type a value and click "Save and continue editing", accepting the warning if any.

    Saving an edit of an IdP-owned field asks for confirmation first (a JavaScript
    confirm naming the attribute and the next sync); an unmapped field saves at once.
    Returns the warnings shown.
    """
    warnings: list[str] = []

    def accept(dialog):
        warnings.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    try:
        page.fill(f"#id_{field}", value)
        save_and_continue(page)
    finally:
        page.remove_listener("dialog", accept)
    if idp_owned:
        assert len(warnings) == 1, warnings
        assert f"{field} is mapped to Entra test tenant: this change will be overwritten at the next sync" in warnings[0]
        assert "Save anyway?" in warnings[0]
    else:
        assert warnings == [], f"an edit of a product-owned field warned: {warnings}"
    return warnings


def ownership_row(page, attribute: str):
    return page.locator(f'table.ownership tr[data-attribute="{attribute}"]')


def cell(page, attribute: str, column: int):
    """A cell of the ownership table: 0 name, 1 owner, 2 current, 3 IdP value, 4 flag, 5 overwritten at."""
    return ownership_row(page, attribute).locator("td").nth(column)


def help_text(page, field: str):
    return page.locator(f".form-row.field-{field} .help, .form-row .field-{field} .help").first


def assert_at_risk(page, attribute: str, idp_value: str) -> None:
    row = ownership_row(page, attribute)
    expect(row).to_have_class(re.compile(r"\bat-risk\b"))
    expect(cell(page, attribute, 4)).to_have_text("⚠ At risk")
    expect(cell(page, attribute, 3)).to_have_text(idp_value)
    expect(row.get_by_role("button", name="Revert to IdP value")).to_be_visible()


def assert_not_at_risk(page, attribute: str) -> None:
    row = ownership_row(page, attribute)
    expect(row).not_to_have_class(re.compile(r"\bat-risk\b"))
    expect(cell(page, attribute, 4)).to_have_text("")
    expect(row.get_by_role("button", name="Revert to IdP value")).to_have_count(0)


# --- case 1: a mapped attribute changed in the IdP ------------------------------------


def test_mapped_attribute_changed_in_the_idp_is_applied(browser_page, live_server, scim, alice):
    page, base = browser_page, live_server.url
    scim_id = provision(scim, "ada@example.com", department="Sales")
    patch(scim, scim_id, replace(DEPARTMENT_PATH, "Finance"))

    login(page, base, "alice", ALICE_PASSWORD)
    open_user(page, base, "ada@example.com")

    expect(page.locator("#id_department")).to_have_value("Finance")
    expect(cell(page, "department", 1)).to_have_text("IdP-owned")
    expect(cell(page, "department", 2)).to_have_text("Finance")
    expect(cell(page, "department", 3)).to_have_text("Finance")
    assert_not_at_risk(page, "department")
    expect(help_text(page, "department")).not_to_contain_text("AT RISK")
    # The push is in the journal the admin sees.
    expect(page.locator("ul.journal")).to_contain_text("department: Sales → Finance")


# --- case 2: a mapped attribute edited locally, lost at the next push -----------------


def test_local_edit_of_mapped_attribute_is_flagged_then_lost_at_next_push(
    browser_page, live_server, scim, alice
):
    page, base = browser_page, live_server.url
    scim_id = provision(scim, "bea@example.com", title="Analyst")

    login(page, base, "alice", ALICE_PASSWORD)
    open_user(page, base, "bea@example.com")
    expect(page.locator("#id_title")).to_have_value("Analyst")
    assert_not_at_risk(page, "title")

    # The admin is warned before saving; Cancel saves nothing.
    page.fill("#id_title", "Lead Analyst")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("input[name=_continue]")
    page.reload()
    expect(page.locator("#id_title")).to_have_value("Analyst")
    assert_not_at_risk(page, "title")

    [warning] = edit_field(page, "title", "Lead Analyst")
    assert re.search(r"next sync, \d{4}-\d\d-\d\d \d\d:\d\d UTC \(expected\)", warning), warning

    # Flagged at once, with the IdP value and when the next sync is expected.
    expect(page.locator("#id_title")).to_have_value("Lead Analyst")
    assert_at_risk(page, "title", "Analyst")
    expect(cell(page, "title", 2)).to_have_text("Lead Analyst")
    expect(cell(page, "title", 5)).to_contain_text("(expected)")
    expect(cell(page, "title", 5)).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC \(expected\)$"))
    expect(ownership_row(page, "title")).to_contain_text("edited by alice")
    expect(help_text(page, "title")).to_contain_text("AT RISK: the IdP value 'Analyst' will replace it.")
    expect(page.locator("fieldset").filter(has=page.locator("table.ownership"))).to_contain_text(
        re.compile(r"Next sync: \d{4}-\d\d-\d\d \d\d:\d\d UTC \(expected\)")
    )
    # Only the edited attribute is flagged.
    assert_not_at_risk(page, "department")
    page.evaluate("window.scrollTo(0, 0)")  # the message, the summary and the flagged row
    screenshot(page, "user-page-at-risk")

    # The IdP pushes a change to another attribute only: the push is a sync of the user.
    patch(scim, scim_id, replace("displayName", "Bea B."))

    page.reload()
    expect(page.locator("#id_display_name")).to_have_value("Bea B.")
    expect(page.locator("#id_title")).to_have_value("Analyst")
    assert_not_at_risk(page, "title")
    expect(cell(page, "title", 2)).to_have_text("Analyst")
    expect(help_text(page, "title")).not_to_contain_text("AT RISK")
    lost = page.locator("ul.journal li li").filter(has_text="LOST EDIT")
    expect(lost).to_have_count(1)
    expect(lost).to_contain_text("title: Lead Analyst → Analyst — LOST EDIT by alice")
    page.locator("ul.journal").evaluate("e => e.scrollIntoView({block: 'center'})")
    screenshot(page, "journal-lost-edit")


# --- case 2b: revert to the IdP value from the admin ----------------------------------


def test_revert_to_idp_value_drops_the_local_edit(browser_page, live_server, scim, alice):
    page, base = browser_page, live_server.url
    provision(scim, "cy@example.com", title="Analyst", department="Sales")

    login(page, base, "alice", ALICE_PASSWORD)
    open_user(page, base, "cy@example.com")
    edit_field(page, "department", "Marketing")
    assert_at_risk(page, "department", "Sales")

    ownership_row(page, "department").get_by_role("button", name="Revert to IdP value").click()

    expect(page.locator("ul.messagelist")).to_contain_text("department is back to the IdP value.", ignore_case=True)
    expect(page.locator("#id_department")).to_have_value("Sales")
    expect(cell(page, "department", 2)).to_have_text("Sales")
    assert_not_at_risk(page, "department")
    expect(ownership_row(page, "department")).not_to_contain_text("edited by")
    expect(page.locator("ul.journal")).to_contain_text("department: Marketing → Sales")


# --- cases 3 and 4: an unmapped attribute ---------------------------------------------


def _unmap_in_mapping_editor(page, base: str, connection, attribute: str, *, users_freed: int) -> None:
    """From the connection's admin page: Edit mappings, set Unmapped, preview, confirm."""
    page.goto(f"{base}/admin/mappings/connection/{connection.pk}/change/")
    page.get_by_role("link", name=re.compile(r"^Edit mappings")).click()
    page.wait_for_url(re.compile(rf"/admin/mappings/connection/{connection.pk}/mappings/$"))
    state = page.locator(f'select[name="state-{attribute}"]')
    expect(state).to_have_value("mapped")
    state.select_option("unmapped")
    page.click("input[name=preview]")

    sentence = f"unmapping {attribute} stops overwriting {users_freed} users' local values"
    preview = page.locator(".impact-preview")
    expect(preview.locator(f'li.impact[data-attribute="{attribute}"]')).to_have_text(sentence)
    expect(preview).to_contain_text("Nothing has been saved yet.")
    expect(state).to_have_value("unmapped")  # the pending choice is kept for the confirm step
    page.click("input[name=confirm]")

    expect(page.locator("ul.messagelist")).to_contain_text(sentence, ignore_case=True)
    expect(page.locator(".impact-preview")).to_have_count(0)
    expect(page.locator(f'select[name="state-{attribute}"]')).to_have_value("unmapped")


def test_unmapped_attribute_is_the_products_and_never_flagged(
    browser_page, live_server, scim, alice, connection
):
    page, base = browser_page, live_server.url
    mobile = 'phoneNumbers[type eq "mobile"].value'
    scim_id = provision(scim, "dan@example.com")
    patch(scim, scim_id, replace(mobile, "+1 555 0100"))

    # While mapped, a local edit of the mobile is flagged...
    login(page, base, "alice", ALICE_PASSWORD)
    open_user(page, base, "dan@example.com")
    edit_field(page, "phone_mobile", "+1 555 0199")
    assert_at_risk(page, "phone_mobile", "+1 555 0100")
    user_page = page.url

    # ...and unmapping it in the mapping editor clears the flag at once, keeping the value.
    _unmap_in_mapping_editor(page, base, connection, "phone_mobile", users_freed=1)
    page.goto(user_page)
    expect(cell(page, "phone_mobile", 1)).to_have_text("Local")
    expect(page.locator("#id_phone_mobile")).to_have_value("+1 555 0199")
    assert_not_at_risk(page, "phone_mobile")
    expect(help_text(page, "phone_mobile")).to_contain_text("Local")
    expect(help_text(page, "phone_mobile")).not_to_contain_text("overwritten")

    # Case 3: the IdP sends another mobile; it is recorded for information only.
    patch(scim, scim_id, replace(mobile, "+1 555 0111"))
    page.reload()
    expect(page.locator("#id_phone_mobile")).to_have_value("+1 555 0199")
    expect(cell(page, "phone_mobile", 3)).to_have_text("+1 555 0111")
    assert_not_at_risk(page, "phone_mobile")
    expect(page.locator("ul.journal")).to_contain_text("recorded only; the product's value was kept")

    # Case 4: the admin edits the mobile; no warning, kept, never flagged.
    edit_field(page, "phone_mobile", "+1 555 0122", idp_owned=False)
    expect(page.locator("#id_phone_mobile")).to_have_value("+1 555 0122")
    assert_not_at_risk(page, "phone_mobile")
    expect(help_text(page, "phone_mobile")).not_to_contain_text("AT RISK")

    # Further pushes: a full PUT with yet another mobile, then a PATCH of something else.
    body = {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": "dan@example.com",
        "externalId": "ext-dan@example.com",
        "active": True,
        "displayName": "Dan",
        "title": "Analyst",
        "phoneNumbers": [{"type": "mobile", "value": "+1 555 0133"}],
        ENTERPRISE: {"department": "Sales"},
    }
    response = scim.put(f"/Users/{scim_id}", body)
    assert response.status_code == 200, response.text
    patch(scim, scim_id, replace("displayName", "Dan D."))

    page.reload()
    expect(page.locator("#id_display_name")).to_have_value("Dan D.")
    expect(page.locator("#id_phone_mobile")).to_have_value("+1 555 0122")
    expect(cell(page, "phone_mobile", 2)).to_have_text("+1 555 0122")
    expect(cell(page, "phone_mobile", 3)).to_have_text("+1 555 0133")
    assert_not_at_risk(page, "phone_mobile")
    expect(page.locator("ul.journal")).not_to_contain_text("LOST EDIT")


# --- the user list: "At risk" column and filter ---------------------------------------


def test_user_list_shows_at_risk_users_and_filters_them(browser_page, live_server, scim, alice):
    page, base = browser_page, live_server.url
    for name in ("eve@example.com", "fay@example.com", "gus@example.com"):
        provision(scim, name)

    login(page, base, "alice", ALICE_PASSWORD)
    open_user(page, base, "eve@example.com")
    edit_field(page, "title", "Chief Analyst")
    open_user(page, base, "gus@example.com")
    edit_field(page, "title", "Senior Analyst")
    edit_field(page, "department", "Legal")

    page.goto(f"{base}/admin/users/user/")

    def at_risk_cell(user_name: str):
        row = page.locator("#result_list tbody tr").filter(
            has=page.get_by_role("link", name=user_name, exact=True)
        )
        return row.locator("td.field-at_risk_column")

    expect(at_risk_cell("eve@example.com")).to_have_text("⚠ 1 at risk")
    expect(at_risk_cell("gus@example.com")).to_have_text("⚠ 2 at risk")
    expect(at_risk_cell("fay@example.com")).to_have_text("—")
    expect(at_risk_cell("alice")).to_have_text("—")

    page.locator("#changelist-filter").get_by_role("link", name="Has at-risk attributes").click()
    page.wait_for_url(re.compile(r"at_risk=yes"))
    names = page.locator("#result_list tbody tr th.field-user_name a").all_inner_texts()
    assert sorted(names) == ["eve@example.com", "gus@example.com"]

    page.locator("#changelist-filter").get_by_role("link", name="No at-risk attributes").click()
    page.wait_for_url(re.compile(r"at_risk=no"))
    names = page.locator("#result_list tbody tr th.field-user_name a").all_inner_texts()
    assert sorted(names) == ["alice", "fay@example.com"]


# --- permissions: a viewer cannot revert ----------------------------------------------


def test_viewer_can_open_the_user_page_but_not_revert(browser_page, live_server, scim, alice):
    page, base = browser_page, live_server.url
    bob = User.objects.create_user("bob", BOB_PASSWORD, is_staff=True)
    bob.user_permissions.add(Permission.objects.get(codename="view_user", content_type__app_label="users"))
    provision(scim, "hal@example.com", title="Analyst")

    # alice makes a local edit, so the row is at risk and its Revert button shows.
    login(page, base, "alice", ALICE_PASSWORD)
    open_user(page, base, "hal@example.com")
    edit_field(page, "title", "Lead Analyst")
    assert_at_risk(page, "title", "Analyst")
    page.context.clear_cookies()

    login(page, base, "bob", BOB_PASSWORD)
    open_user(page, base, "hal@example.com")
    # bob sees the page read-only, with the flag and the IdP value.
    expect(page.locator("input[name=_continue]")).to_have_count(0)
    expect(page.locator(".field-title .readonly")).to_have_text("Lead Analyst")
    expect(cell(page, "title", 4)).to_have_text("⚠ At risk")
    expect(cell(page, "title", 3)).to_have_text("Analyst")
    user_page = page.url

    button = ownership_row(page, "title").get_by_role("button", name="Revert to IdP value")
    with page.expect_response(re.compile(r"/admin/users/user/\d+/revert/$")) as refused:
        button.click()
    assert refused.value.status == 403
    assert refused.value.request.method == "POST"

    user = User.objects.get(user_name="hal@example.com")
    assert user.title == "Lead Analyst"
    assert AttributeState.objects.get(user=user, attribute="title").at_risk is True

    page.goto(user_page)
    expect(page.locator(".field-title .readonly")).to_have_text("Lead Analyst")
    expect(cell(page, "title", 4)).to_have_text("⚠ At risk")


# --- the keyboard: Enter in a field must save, not revert -----------------------------


def test_enter_in_a_field_saves_the_form(browser_page, live_server, scim, alice):
    page, base = browser_page, live_server.url
    provision(scim, "ivy@example.com", title="Analyst")

    login(page, base, "alice", ALICE_PASSWORD)
    open_user(page, base, "ivy@example.com")
    edit_field(page, "title", "Lead Analyst")
    assert_at_risk(page, "title", "Analyst")

    page.fill("#id_nick_name", "Ivy")
    warnings = []  # nick_name is mapped too: Enter warns first, like the Save button
    page.on("dialog", lambda dialog: (warnings.append(dialog.message), dialog.accept()))
    with page.expect_navigation():
        page.press("#id_nick_name", "Enter")
    assert len(warnings) == 1 and warnings[0].startswith("nick_name is mapped to Entra test tenant"), warnings

    # Enter pressed the form's default button, Save (back to the list), not a Revert.
    # The page has loaded: check at once rather than poll until a timeout.
    messages = page.locator("ul.messagelist").inner_text()
    assert "was changed successfully" in messages and "back to the IdP value" not in messages, messages
    open_user(page, base, "ivy@example.com")
    assert page.input_value("#id_nick_name") == "Ivy"
    assert page.input_value("#id_title") == "Lead Analyst"
    assert_at_risk(page, "title", "Analyst")
