"""Browser fixtures: Debian's Chromium driven by sync Playwright against pytest-django's live server.

`playwright install` cannot download browsers here, so the system Chromium is
launched directly. One browser per test module, one fresh context (cookies,
storage) per test, so tests stay independent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"

CHROMIUM = os.environ.get("SCIMSYNC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def _chromium():
    """One Chromium per test module.

    Playwright's sync API keeps an asyncio loop running in the main thread while
    it is started, and Django's ORM refuses to run under a running loop unless
    DJANGO_ALLOW_ASYNC_UNSAFE is set. The tests use the ORM only for set-up and to
    check the database after a refusal, from the main thread, so it is safe; the
    variable is set only while the browser runs, so other test modules keep
    Django's check.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as mp, sync_playwright() as p:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(_chromium, request):
    """A page in a new browser context (no cookies shared with other tests).

    Every test leaves a screenshot of the page it ended on, as
    artifacts/screenshots/end-<test name>.png (issue 6: each browser test saves one).
    """
    context = _chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        yield page
        screenshot(page, f"end-{request.node.name}")
    finally:
        context.close()


@pytest.fixture(autouse=True)
def _close_scim_connections(request):
    """Close the SCIM client's keep-alive sockets after each test.

    The live server keeps a thread, and with CONN_MAX_AGE a database connection,
    per open HTTP connection; left open they keep the PostgreSQL test database
    busy, and dropping it at the end of the session fails.
    """
    client = request.getfixturevalue("scim") if "scim" in request.fixturenames else None
    yield
    if client is not None:
        client.session.close()


def login(page, live_server_url: str, user_name: str, password: str) -> None:
    """Sign in through the admin login form and wait for the admin index."""
    page.goto(f"{live_server_url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", user_name)
    page.fill("input[name=password]", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server_url}/admin/")


def screenshot(page, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot as artifacts/screenshots/<name>.png under the repo root.

    The viewport by default: a user page is ~4000 px tall, and a full-page shot
    shrunk to fit a screen makes the at-risk flag unreadable. Scroll what matters
    into view first.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
