"""Personas and clients for the management API.

alice: superuser. bob: staff with every view permission and nothing else.
charlie: staff without any permission. dave: an active local account that is not staff.
"""

from __future__ import annotations

import pytest
import requests
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from scimsync.api.models import ApiKey
from scimsync.api.services import api_key_create
from scimsync.sync import services
from users.models import User


@pytest.fixture(autouse=True)
def eager_celery():
    """Sync runs execute where they are queued (in the server thread), and no message reaches
    a broker that another test run or a developer's worker shares."""
    from scimsync.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture
def bob(db):
    """bob: a viewer. Staff with every `view_` permission and no other."""
    bob = User.objects.create_user("bob", "bob-password-123", is_staff=True)
    bob.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    return bob


@pytest.fixture
def charlie(db):
    """charlie: staff without any permission."""
    return User.objects.create_user("charlie", "charlie-password-123", is_staff=True)


def key_for(user: User, scope: str = ApiKey.Scope.READ_WRITE) -> str:
    return api_key_create(owner=user, scope=scope, label=f"tests {scope}")[1]


class Api:
    """The management API over real HTTP with an API key."""

    def __init__(self, base_url: str, key: str | None):
        self.base_url = base_url.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        if key:
            self.session.headers["Authorization"] = f"Api-Key {key}"

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.base_url + path, timeout=30, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.request("PATCH", path, json=json, **kw)


@pytest.fixture
def api(live_server, alice):
    """alice's read-write key against the live server."""
    return Api(live_server.url, key_for(alice))


@pytest.fixture
def client_as():
    """An in-process DRF client for a persona's key: `client_as(alice, "read_only")`."""

    def make(user: User, scope: str = ApiKey.Scope.READ_WRITE) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key_for(user, scope)}")
        return client

    return make


def provision(connection, user_name: str, **received) -> User:
    """A user as an IdP's POST creates it, through the sync engine."""
    return services.user_provision(
        connection=connection, received={"user_name": user_name, **received}, extras={},
        actor=services.Actor("SCIM POST"),
    )
