"""Tokens on the connection page (issue 6, "The connection page: tokens (create, revoke,
last used, expiry)"; issue 2 item 4: stored only as a hash, shown once, revocable).

Through Django's test client; tests/browser/test_connection_tokens.py walks the same
page in Chromium and uses the token over real HTTP.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from mappings.models import ScimToken
from mappings.services import connection_authenticate, token_create
from tests.conftest import logged_in
from users.models import User

pytestmark = pytest.mark.django_db

TOKEN_IN_MESSAGE = re.compile(r'<code class="token">(scim_[^<]+)</code>')



@pytest.fixture
def viewer(db):
    """Can open the connection page but not manage its tokens."""
    user = User.objects.create_user("vera", "vera-password-123", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_connection", "change_connection"]))
    return user


def _page(client, connection):
    return client.get(f"/admin/mappings/connection/{connection.pk}/change/")


def test_create_token_with_expiry_shows_it_once_and_stores_only_its_digest(alice, connection):
    client = logged_in(alice)
    assert b"Create token" in _page(client, connection).content

    response = client.post(f"/admin/mappings/connection/{connection.pk}/tokens/new/",
                           {"token_label": "Entra production", "token_expires_days": "30"})
    assert response.status_code == 302
    first = _page(client, connection).content.decode()
    plaintext = TOKEN_IN_MESSAGE.search(first).group(1)

    token = ScimToken.objects.get(connection=connection, label="Entra production")
    assert token.digest == ScimToken.digest_of(plaintext) and plaintext not in token.digest
    assert timedelta(days=29, hours=23) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert connection_authenticate(plaintext).pk == connection.pk
    # Shown once: from then on the page lists the token by its hint, never its secret.
    page = _page(client, connection).content.decode()
    assert token.hint in page and plaintext not in page and "Entra production" in page


def test_revoke_from_the_connection_page_stops_the_token_at_once(alice, connection, token):
    stored = ScimToken.objects.get(connection=connection)
    assert f"/tokens/{stored.pk}/revoke/" in _page(logged_in(alice), connection).content.decode()

    response = logged_in(alice).post(f"/admin/mappings/connection/{connection.pk}/tokens/{stored.pk}/revoke/")
    assert response.status_code == 302
    assert connection_authenticate(token) is None
    page = _page(logged_in(alice), connection).content.decode()
    assert "revoked" in page and f"/tokens/{stored.pk}/revoke/" not in page


def test_a_bad_expiry_is_refused_with_a_message_and_creates_nothing(alice, connection):
    response = logged_in(alice).post(f"/admin/mappings/connection/{connection.pk}/tokens/new/",
                                   {"token_expires_days": "-3"}, follow=True)
    assert "no token was created" in response.content.decode()
    assert not ScimToken.objects.filter(connection=connection).exists()


def test_without_manage_tokens_no_buttons_and_the_views_refuse(viewer, connection, token):
    client = logged_in(viewer)
    page = _page(client, connection).content.decode()
    stored = ScimToken.objects.get(connection=connection)
    assert stored.hint in page  # sees the tokens and when they were used
    assert "Create token" not in page and "/revoke/" not in page
    assert client.post(f"/admin/mappings/connection/{connection.pk}/tokens/new/").status_code == 403
    assert client.post(
        f"/admin/mappings/connection/{connection.pk}/tokens/{stored.pk}/revoke/").status_code == 403
    assert connection_authenticate(token) is not None
    assert ScimToken.objects.filter(connection=connection).count() == 1


def test_a_token_is_revoked_only_through_its_own_connection(alice, connection):
    from mappings.services import connection_create

    other = connection_create(name="Other", preset="okta")
    foreign, plaintext = token_create(connection=other)
    response = logged_in(alice).post(f"/admin/mappings/connection/{connection.pk}/tokens/{foreign.pk}/revoke/")
    assert response.status_code == 404
    assert connection_authenticate(plaintext) is not None


def test_get_on_the_token_views_changes_nothing(alice, connection, token):
    stored = ScimToken.objects.get(connection=connection)
    client = logged_in(alice)
    assert client.get(f"/admin/mappings/connection/{connection.pk}/tokens/new/").status_code == 405
    assert client.get(
        f"/admin/mappings/connection/{connection.pk}/tokens/{stored.pk}/revoke/").status_code == 405
    assert ScimToken.objects.filter(connection=connection).count() == 1
    assert connection_authenticate(token) is not None
