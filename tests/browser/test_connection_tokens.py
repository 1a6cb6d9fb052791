"""The connection page's tokens in Chromium (issue 6, "The connection page: tokens (create,
revoke, last used, expiry)"): an admin creates a token with an expiry, copies it from
the page, the IdP pushes with it over real HTTP, and a revoke stops it at once."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login, screenshot
from tests.browser.test_admin_four_cases import ALICE_PASSWORD
from tests.conftest import ScimClient

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_token_created_on_the_connection_page_pushes_until_revoked(browser_page, live_server, alice, connection):
    page, base = browser_page, live_server.url
    login(page, base, "alice", ALICE_PASSWORD)
    page.goto(f"{base}/admin/mappings/connection/{connection.pk}/change/")
    panel = page.locator("#scim-tokens")
    expect(panel).to_contain_text("No token yet")

    page.fill("input[name=token_label]", "Entra production")
    page.fill("input[name=token_expires_days]", "90")
    panel.get_by_role("button", name="Create token").click()
    plaintext = page.locator("ul.messagelist code.token").inner_text()
    row = panel.locator("tr", has_text="Entra production")
    last_used, expires = row.locator("td").nth(3), row.locator("td").nth(4)
    expect(row.locator("td").nth(5)).to_have_text("usable")
    expect(last_used).to_have_text("never")
    expect(expires).to_contain_text("UTC")

    idp = ScimClient(f"{base}/scim/v2", plaintext)
    assert idp.get("/Users").status_code == 200
    page.reload()
    expect(page.locator("ul.messagelist code.token")).to_have_count(0)  # shown once
    expect(last_used).to_contain_text("UTC")  # the push was recorded
    screenshot(page, "connection-tokens")

    row.get_by_role("button", name="Revoke").click()
    expect(page.locator("ul.messagelist")).to_contain_text("it no longer authenticates")
    expect(row.locator("td").nth(5)).to_contain_text("revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
    refused = idp.get("/Users")
    assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers
    idp.session.close()
