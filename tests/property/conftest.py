"""Shared helpers for the property tests: a bearer token and a SCIM caller on the Django test client.

The property tests send hundreds of requests, so they go through the Django
test client in-process rather than a live server: the request still runs the
real SCIM views, adapters and SQL, only the socket is skipped.
"""

from __future__ import annotations

import json

import pytest

from mappings.services import connection_create, token_create


class InProcessScim:
    """SCIM requests through django.test.Client with a bearer token; bodies as application/scim+json."""

    def __init__(self, client, token: str):
        self.client = client
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def request(self, method: str, path: str, body=None, params=None):
        call = getattr(self.client, method.lower())
        if body is None:
            return call("/scim/v2" + path, params or {}, **self.headers)
        return call("/scim/v2" + path, json.dumps(body), content_type="application/scim+json", **self.headers)


@pytest.fixture
def scim_client(client, db):
    connection = connection_create(name="Property tenant", preset="generic")
    _, token = token_create(connection=connection, label="property")
    return InProcessScim(client, token)
