"""The browser middleware (sessions, CSRF, the logged-in user, messages) runs for the admin
and the API's browser session, and not for SCIM requests (scimsync/middleware.py)."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_a_scim_request_carries_no_session_user_or_messages(token):
    # A session cookie sent along (a browser that also uses the admin) is not even looked at.
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    client.cookies["sessionid"] = "anything"
    response = client.get("/scim/v2/Users")
    assert response.status_code == 200
    request = response.wsgi_request
    assert not hasattr(request, "session") and not hasattr(request, "user") and not hasattr(request, "_messages")
    assert "CSRF_COOKIE" not in request.META
    assert "Cookie" not in response.get("Vary", "") and not response.cookies


def test_the_admin_still_has_sessions_csrf_and_messages(alice):
    client = Client(enforce_csrf_checks=True)
    login = client.get("/admin/login/")
    assert "csrftoken" in login.cookies  # CsrfViewMiddleware ran
    refused = client.post("/admin/login/", {"username": "alice", "password": "x"})
    assert refused.status_code == 403  # no CSRF token: refused, as before
    from tests.conftest import logged_in

    page = logged_in(alice).get("/admin/")
    assert page.status_code == 200 and page.wsgi_request.user == alice  # session + auth middleware
