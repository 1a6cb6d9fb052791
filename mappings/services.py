"""Writes for connections and their tokens."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from mappings.models import AttributeMapping, Connection, CustomAttribute, ScimToken
from mappings.presets import preset_mapped_attributes
from scimsync import rawsql


@transaction.atomic
def connection_create(
    *, name: str, preset: str = Connection.Preset.GENERIC, sync_cadence: timedelta | None = None
) -> Connection:
    """Create a connection with one mapping row per catalogue attribute, from its preset."""
    mapped = preset_mapped_attributes(preset)
    connection = Connection(name=name, preset=preset)
    if sync_cadence is not None:
        connection.sync_cadence = sync_cadence
    connection.full_clean()
    connection.save()
    connection_apply_preset_mappings(connection=connection, mapped=mapped)
    return connection


def connection_apply_preset_mappings(*, connection: Connection, mapped: set[str]) -> None:
    """Create the missing mapping rows of a new connection (existing rows are kept)."""
    from mappings.catalogue import all_attributes

    existing = set(connection.mappings.values_list("attribute", flat=True))
    generic = connection.preset == Connection.Preset.GENERIC
    AttributeMapping.objects.bulk_create(
        AttributeMapping(
            connection=connection,
            attribute=a.short_name,
            state=AttributeMapping.State.MAPPED
            if a.short_name in mapped or (a.is_custom and generic) else AttributeMapping.State.UNMAPPED,
        )
        for a in all_attributes()
        if not a.always_idp and a.short_name not in existing
    )


def token_create(*, connection: Connection, label: str = "", expires_at=None) -> tuple[ScimToken, str]:
    """Create a bearer token; the plaintext is returned once and never stored."""
    plaintext = ScimToken.new_plaintext()
    token = ScimToken.objects.create(
        connection=connection, label=label, digest=ScimToken.digest_of(plaintext),
        hint=plaintext[: len(ScimToken.PREFIX) + 4], expires_at=expires_at,
    )
    return token, plaintext


def token_revoke(*, token: ScimToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def token_authenticate(plaintext: str) -> ScimToken | None:
    """The usable token whose digest matches, or None.

    The lookup is by digest on a unique index, so its timing depends on the
    digest, not on how many characters of the secret were right; the final
    comparison is constant-time all the same.
    """
    import hmac

    if not plaintext.startswith(ScimToken.PREFIX):
        return None
    digest = ScimToken.digest_of(plaintext)
    token = ScimToken.objects.usable().select_related("connection").filter(digest=digest).first()
    if token is None or not hmac.compare_digest(token.digest, digest):
        return None
    now = timezone.now()
    # Recording every use would write on every request; a minute's precision is plenty.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ScimToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def connection_authenticate(plaintext: str, *, along: tuple[str, list] | None = None) -> Connection | None:
    """The connection of the usable token `plaintext`, or None: token_authenticate in one query.

    Every SCIM request starts here, so the token and its connection come from
    one raw query: the ORM's select_related version spent three times as long
    compiling its SQL as PostgreSQL spent answering. Same rules: lookup by
    digest, revoked and expired tokens refused, last use stamped once a minute.

    The same query reads what every SCIM request needs next: the connection's
    mappings (`mappings_json`, {attribute: "state/apply/o"}) and the custom
    attribute names (`custom_names_json`), both as JSON text; see
    prime_catalogue_snapshot and prime_ownership.

    `along` (PostgreSQL only): (sql, params) of a scalar subquery that may use the
    connection's id as `c.id`, answered by the same statement; its value is the
    connection's `along`. A request that knows its one query before the token is
    checked (an IdP's lookup by userName) then costs one statement, not two, and
    still reads nothing of a connection whose token is not valid.
    """
    import hmac

    if not plaintext.startswith(ScimToken.PREFIX):
        return None
    digest = ScimToken.digest_of(plaintext)
    now = timezone.now()
    extra = ("t.id", "t.digest", "(t.last_used_at IS NULL OR t.last_used_at < %s)", *_CONFIGURATION_COLUMNS[rawsql.vendor()])
    names = ("token_id", "token_digest", "token_stale", "mappings_json", "custom_names_json")
    params = [now - timedelta(minutes=1)]
    if along is not None and rawsql.vendor() == "postgresql":
        extra, names = (*extra, along[0]), (*names, "along")
        params += along[1]
    select, fetch = rawsql.select_rows(Connection, "c", extra)
    found = fetch(
        Connection,
        f"SELECT {select} "
        f"FROM {Connection._meta.db_table} c JOIN {ScimToken._meta.db_table} t ON t.connection_id = c.id "
        f"WHERE t.digest = %s AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > %s)",
        [*params, digest, now], extra=names,
    )
    if not found or not hmac.compare_digest(found[0].token_digest, digest):
        return None
    connection = found[0]
    if connection.token_stale:
        ScimToken.objects.filter(pk=connection.token_id).update(last_used_at=now)
    return connection


_MAPPING = AttributeMapping._meta.db_table
_CUSTOM = CustomAttribute._meta.db_table
_SEEN = "(CASE WHEN m.observed_at IS NULL THEN '' ELSE 'o' END)"
# A connection's mappings and the custom attribute names, as JSON text, per database
# (scimsync.sync.ownership.prime_ownership reads the first).
_CONFIGURATION_COLUMNS = {
    "postgresql": (
        f"(SELECT json_object_agg(m.attribute, m.state || '/' || m.apply || '/' || {_SEEN})::text FROM {_MAPPING} m "
        f"WHERE m.connection_id = c.id)",
        f"(SELECT json_agg(a.name ORDER BY a.id)::text FROM {_CUSTOM} a)",
    ),
    "sqlite": (
        f"(SELECT json_group_object(m.attribute, m.state || '/' || m.apply || '/' || {_SEEN}) FROM {_MAPPING} m "
        f"WHERE m.connection_id = c.id)",
        f"(SELECT json_group_array(a.name) FROM (SELECT name FROM {_CUSTOM} ORDER BY id) a)",
    ),
}


@transaction.atomic
def custom_attribute_create(*, name: str, description: str = "") -> "CustomAttribute":
    """Add an attribute under the product's extension schema, with a mapping row per connection.

    Generic connections map the whole catalogue (DESIGN.md), so they map it too;
    vendor presets start it unmapped, since their IdPs do not send it by default.
    """
    from mappings.catalogue import custom_attribute
    from mappings.models import CustomAttribute

    attribute = CustomAttribute(name=name, description=description)
    attribute.full_clean()
    attribute.save()
    short_name = custom_attribute(name).short_name
    AttributeMapping.objects.bulk_create(
        AttributeMapping(
            connection=connection, attribute=short_name,
            state=AttributeMapping.State.MAPPED if connection.preset == Connection.Preset.GENERIC
            else AttributeMapping.State.UNMAPPED,
        )
        for connection in Connection.objects.all()
    )
    return attribute


def connection_set_cadence(
    *, connection: Connection, sync_cadence: timedelta, sync_schedule: timedelta | None
) -> Connection:
    """Declare how often the IdP pushes, and how often the product syncs on its own (None: never).

    Both feed the next-sync time (scimsync.sync.next_sync), which is derived, not stored.
    """
    connection.sync_cadence = sync_cadence
    connection.sync_schedule = sync_schedule
    connection.full_clean()
    connection.save(update_fields=["sync_cadence", "sync_schedule"])
    return connection
