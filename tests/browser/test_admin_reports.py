"""The ownership views beyond one user's page, walked in Chromium (issue 6).

The at-risk report with bulk revert, the mapping editor's impact preview before
a save, and restoring a lost edit. The IdP side is real SCIM over HTTP; local
edits that are set-up rather than the subject of a test go through the same
service an admin's save goes through. Each test saves a screenshot.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from mappings.models import AttributeMapping
from scimsync.models import AttributeState, JournalChange
from scimsync.sync import services
from tests.browser.conftest import login, screenshot
from tests.browser.test_admin_four_cases import (
    ALICE_PASSWORD,
    assert_at_risk,
    edit_field,
    open_user,
    patch,
    provision,
    replace,
)
from users.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def local_edit(user_name: str, attribute: str, value: str) -> None:
    user = User.objects.get(user_name=user_name)
    services.user_local_edit(user=user, attribute=attribute, value=value, actor=services.Actor("helpdesk"))


def run_action(page, label: str) -> None:
    """Select every row of a changelist and run the admin action with this label."""
    page.check("#action-toggle")
    page.select_option("select[name=action]", label=label)
    page.click("button[name=index]")


def test_at_risk_report_lists_local_edits_with_idp_values_and_bulk_reverts(
    browser_page, live_server, scim, alice
):
    """Issue 6, "The at-risk report": every at-risk attribute across users, with the IdP
    value that will replace it and the next sync; bulk revert puts the IdP values back."""
    page, base = browser_page, live_server.url
    provision(scim, "kim@example.com", title="Analyst", department="Sales")
    provision(scim, "lee@example.com", title="Engineer")
    local_edit("kim@example.com", "title", "Lead Analyst")
    local_edit("kim@example.com", "department", "Operations")
    local_edit("lee@example.com", "title", "Staff Engineer")

    login(page, base, "alice", ALICE_PASSWORD)
    page.set_viewport_size({"width": 1800, "height": 900})  # every column in the screenshot
    page.goto(f"{base}/admin/scimsync/atriskattribute/")
    expect(page.locator("#content h1")).to_have_text("At-risk report: local edits the next sync will overwrite")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)
    for local, idp in (("Lead Analyst", "Analyst"), ("Operations", "Sales"), ("Staff Engineer", "Engineer")):
        row = rows.filter(has_text=local)
        expect(row).to_have_count(1)
        expect(row).to_contain_text(idp)
        expect(row).to_contain_text("Entra test tenant")
    screenshot(page, "at-risk-report")

    run_action(page, "Revert selected to the IdP value")
    expect(page.locator("ul.messagelist")).to_be_visible()
    expect(page.locator("#result_list tbody tr")).to_have_count(0)

    kim = User.objects.get(user_name="kim@example.com")
    assert (kim.title, kim.department) == ("Analyst", "Sales")
    assert User.objects.get(user_name="lee@example.com").title == "Engineer"


def test_mapping_change_shows_its_impact_and_saves_only_on_confirm(browser_page, live_server, scim, alice, connection):
    """Issue 6, "Mappings per connection": saving a change first shows its impact in users
    and asks to confirm; DESIGN.md: mapping an attribute flags the local values that now
    differ from the IdP's at once."""
    page, base = browser_page, live_server.url
    services.mapping_update(connection=connection, attribute="title", state="unmapped", actor=services.Actor("setup"))
    for name in ("mia", "noa", "oli"):
        provision(scim, f"{name}@example.com", title="Analyst")
    # Unmapped: the product owns title, so these edits are nobody's risk yet.
    local_edit("mia@example.com", "title", "Team Lead")
    local_edit("noa@example.com", "title", "Principal")
    assert not AttributeState.objects.filter(at_risk=True).exists()

    login(page, base, "alice", ALICE_PASSWORD)
    page.goto(f"{base}/admin/mappings/connection/{connection.pk}/mappings/")
    page.select_option('select[name="state-title"]', "mapped")
    page.click("input[name=preview]")
    impact = page.locator('.impact-preview li.impact[data-attribute="title"]')
    # oli's title was never set locally either (unmapped on create): empty differs from the
    # IdP's "Analyst" too, so DESIGN.md's definition of at risk counts all three users.
    expect(impact).to_have_text(re.compile(r"mapping title puts 3 users' local values at risk"))
    expect(page.locator(".impact-preview")).to_contain_text("Nothing has been saved yet.")
    screenshot(page, "mapping-impact-preview")
    # The preview changed nothing.
    assert AttributeMapping.objects.get(connection=connection, attribute="title").state == "unmapped"
    assert not AttributeState.objects.filter(at_risk=True).exists()

    page.click("input[name=confirm]")
    expect(page.locator("ul.messagelist")).to_be_visible()
    assert AttributeMapping.objects.get(connection=connection, attribute="title").state == "mapped"

    open_user(page, base, "mia@example.com")
    assert_at_risk(page, "title", "Analyst")


def test_lost_edit_is_listed_and_restored_as_a_new_flagged_local_edit(browser_page, live_server, scim, alice):
    """Issue 6, "The journal": an overwritten local edit is a lost edit; restoring it brings
    the value back as a new local edit, at risk again because title is still mapped."""
    page, base = browser_page, live_server.url
    scim_id = provision(scim, "pat@example.com", title="Analyst")

    login(page, base, "alice", ALICE_PASSWORD)
    open_user(page, base, "pat@example.com")
    edit_field(page, "title", "Head of Analysis")
    # The next push re-asserts every mapped attribute (DESIGN.md, case 2): the edit is lost.
    patch(scim, scim_id, replace("displayName", "Pat"))
    assert JournalChange.objects.filter(lost_edit=True, attribute="title").count() == 1

    page.goto(f"{base}/admin/scimsync/lostedit/")
    row = page.locator("#result_list tbody tr").filter(has_text="pat@example.com")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Head of Analysis")
    run_action(page, "Restore the lost value (as a new local edit)")
    expect(page.locator("ul.messagelist")).to_be_visible()

    open_user(page, base, "pat@example.com")
    expect(page.locator("#id_title")).to_have_value("Head of Analysis")
    assert_at_risk(page, "title", "Analyst")
    ownership_table = page.locator("table.ownership")
    ownership_table.scroll_into_view_if_needed()
    screenshot(page, "lost-edit-restored")


def test_a_sync_runs_progress_moves_without_a_reload(browser_page, live_server, scim, alice, connection):
    """Issue 4: "the admin shows progress without a page reload". The run's page polls its
    progress; the run is then executed (here in the test process, as a worker would) and the
    page, never reloaded, shows it finished with its counts."""
    from scimsync.models import SyncRun
    from scimsync.sync import runs

    page, base = browser_page, live_server.url
    for i in range(3):
        provision(scim, f"p{i}@example.com", title="Analyst")
    local_edit("p0@example.com", "title", "Lead")
    run = SyncRun.objects.create(connection=connection, users_total=0)  # queued; no worker in this test

    login(page, base, "alice", ALICE_PASSWORD)
    page.goto(f"{base}/admin/scimsync/syncrun/{run.pk}/change/")
    text = page.locator(".sync-progress-text")
    expect(text).to_contain_text("Queued")
    page.evaluate("window.__loaded_marker = 1")  # gone if the page reloads

    runs.sync_run_execute(run_id=run.pk)
    expect(text).to_contain_text("3 / 3 users, Succeeded (1 attributes overwritten, 1 lost edits)")
    assert page.evaluate("window.__loaded_marker") == 1
    assert page.locator(".sync-progress progress").get_attribute("value") == "3"
    screenshot(page, "sync-run-progress")


def test_the_dashboard_reads_at_a_glance(browser_page, live_server, scim, alice, connection):
    """Issue 6, "A dashboard that shows at a glance": users at risk per connection and the next
    sync, legible in the index's narrow column (the admin's own index styles once squeezed
    each header to a letter a line and cut the next-sync cell)."""
    page, base = browser_page, live_server.url
    provision(scim, "kim@example.com", title="Analyst")
    local_edit("kim@example.com", "title", "Lead Analyst")
    login(page, base, "alice", ALICE_PASSWORD)
    page.goto(f"{base}/admin/")
    dashboard = page.locator("#dashboard")
    row = dashboard.locator(f'tr[data-connection="{connection.name}"]')
    expect(row).to_contain_text("UTC")
    cells = row.locator("td")
    expect(cells.nth(1)).to_have_text("1")  # kim's title is at risk
    line = 20  # px: the admin's 1rem line height plus slack
    for header in dashboard.locator("thead th").all():
        assert header.bounding_box()["height"] <= 3 * line, header.inner_text()
    table, box = dashboard.locator("table").bounding_box(), dashboard.bounding_box()
    assert table["x"] + table["width"] <= box["x"] + box["width"] + 1  # nothing cut at the right
    screenshot(page, "dashboard")
