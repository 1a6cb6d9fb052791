"""Shared fixtures: personas, connections with tokens, a SCIM client over real HTTP."""

from __future__ import annotations

import os

import pytest
from django.test import Client
import requests

from mappings.services import connection_create, token_create
from users.models import User

# Tests default to DEBUG off like production; a test SECRET_KEY is set here only
# when the environment has none, so `pytest` works in a fresh checkout.
os.environ.setdefault("SECRET_KEY", "test-only-secret-key")


class ScimClient:
    """Sends SCIM requests to a running server over HTTP with a bearer token."""

    def __init__(self, base_url: str, token: str | None):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.token = token

    def request(self, method: str, path: str, *, json=None, data=None, headers=None, params=None, auth=True):
        all_headers = {"Content-Type": "application/scim+json"} if (json is not None or data is not None) else {}
        if auth and self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        all_headers.update(headers or {})
        return self.session.request(
            method, self.base_url + path, json=json, data=data, headers=all_headers, params=params, timeout=30
        )

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, json=body, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, json=body, **kw)

    def patch(self, path, operations, **kw):
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}
        return self.request("PATCH", path, json=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def logged_in(user) -> Client:
    """A test client signed in to the admin as `user` (Django's session, no password round trip)."""
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice(db):
    """alice: the local admin (superuser, no connection)."""
    return User.objects.create_superuser("alice", "alice-password-123")


@pytest.fixture
def connection(db):
    return connection_create(name="Entra test tenant", preset="generic")


@pytest.fixture
def token(connection):
    _, plaintext = token_create(connection=connection, label="tests")
    return plaintext


@pytest.fixture
def scim(live_server, token):
    """A SCIM client for `connection`, talking to a live server over HTTP."""
    return ScimClient(live_server.url + "/scim/v2", token)


@pytest.fixture
def other_scim(live_server, transactional_db):
    """charlie's connection: a second IdP whose token must never reach the first one's data."""
    other = connection_create(name="Okta other tenant", preset="okta")
    _, plaintext = token_create(connection=other, label="charlie")
    return ScimClient(live_server.url + "/scim/v2", plaintext)


USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
