"""Bearer-token authentication of SCIM requests.

Each token belongs to one connection; every query a SCIM view makes is scoped
to that connection, so a token never sees another connection's resources or
a local account.
"""

from __future__ import annotations

import json

from mappings.catalogue import prime_catalogue_snapshot
from mappings.models import Connection
from mappings.services import connection_authenticate
from scimsync.scim.errors import Unauthorized
from scimsync.sync.ownership import prime_ownership


def authenticate(request, *, along: tuple[str, list] | None = None) -> Connection:
    """The connection of the request's bearer token, or Unauthorized. `along`: a query
    answered with the token's (mappings.services.connection_authenticate)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthorized("Authentication required: send Authorization: Bearer <token>")
    connection = connection_authenticate(credentials.strip(), along=along)
    if connection is None:
        raise Unauthorized("The bearer token is not valid, expired or revoked", bearer_error="invalid_token")
    # The token query read the catalogue and the mappings too: the rest of the
    # request (inside the request log's snapshots) asks no query for them.
    prime_catalogue_snapshot(json.loads(connection.custom_names_json or "[]"))
    prime_ownership(connection.pk, connection.mappings_json)
    return connection
