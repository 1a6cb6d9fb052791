"""Fill the benchmark database: one Entra connection, a token, N provisioned users.

    python -m benchmarks.seed USERS OUT.json      (DJANGO_SETTINGS_MODULE and DATABASE_URL set)

User 0 goes through the real SCIM create path (SCIMUserAdapter.create). The
others are built in Python exactly as that path builds them (same document
parser, same ownership rules, same value writer) and written with PostgreSQL
COPY: users, their AttributeState rows, and the "Provisioned" journal entry
with its changes. Before loading, the bulk builder's output for user 0 is
compared with what the real path stored, so the bulk load cannot silently
drift from what a SCIM POST creates. 100k users load in about a minute.
"""

from __future__ import annotations

import json
import sys
import time
import django

CHUNK = 5000


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    total, out_path = int(argv[0]), argv[1]
    django.setup()
    started = time.monotonic()
    info = load(total)
    info["load_seconds"] = round(time.monotonic() - started, 1)
    with open(out_path, "w") as f:
        json.dump(info, f)
    return 0


def load(total: int) -> dict:
    from django.contrib.auth.hashers import make_password
    from django.db import connection as db
    from django.db import transaction
    from django.utils import timezone

    from benchmarks import dataset
    from mappings.catalogue import all_attributes, get_attribute
    from mappings.services import connection_create, token_create
    from scimsync.models import AttributeState, JournalChange, JournalEntry
    from scimsync.scim.adapters import SCIMUserAdapter, _clean_extras
    from scimsync.scim.documents import parse_user_document
    from scimsync.sync.ownership import Ownership
    from scimsync.sync.services import compute_at_risk
    from scimsync.sync.values import normalize, read_value, same_value, write_value
    from users.models import User, name_key

    connection = connection_create(name="bench-entra", preset="entra")
    _, token = token_create(connection=connection, label="benchmark")
    ownership = Ownership.for_connection(connection)
    attributes = all_attributes()
    now = timezone.now()
    unusable = make_password(None)

    def build(i: int, user_pk: int, entry_pk: int):
        """User i as SCIMUserAdapter.create -> services.user_provision would store it."""
        parsed = parse_user_document(dataset.entra_user(i), attributes)
        received = dict(parsed.values)
        user = User(
            id=user_pk, connection=connection, user_name=received["user_name"],
            scim_extras=_clean_extras(parsed.extras), scim_id=dataset.scim_id(i),
            password=unusable, date_joined=now, updated_at=now,
        )
        user.user_name_key = name_key(user.user_name)
        changes = []
        for name, value in received.items():
            attribute = get_attribute(name)
            if ownership.applies_on_create(attribute) and normalize(value) is not None:
                write_value(user, attribute, value)
                changes.append(JournalChange(entry_id=entry_pk, attribute=name, old_value=None,
                                             new_value=normalize(value)))
        states = []
        for name, value in received.items():
            attribute = get_attribute(name)
            state = AttributeState(user_id=user_pk, attribute=name, idp_value=normalize(value),
                                   idp_received_at=now)
            if not ownership.overwrites_on_sync(attribute):
                current = read_value(user, attribute)
                if not same_value(current, state.idp_value):
                    changes.append(JournalChange(
                        entry_id=entry_pk, attribute=name, old_value=current, new_value=state.idp_value,
                        outcome=JournalChange.Outcome.KEPT_LOCAL,
                    ))
            state.at_risk = compute_at_risk(user, attribute, state, ownership)
            states.append(state)
        entry = JournalEntry(
            id=entry_pk, user_id=user_pk, user_name=user.user_name, connection_id=connection.pk,
            kind=JournalEntry.Kind.CREATE, source="SCIM POST", created_at=now,
        )
        return user, states, entry, changes

    # User 0 through the real SCIM create path, then the bulk builder checked against it.
    real = SCIMUserAdapter.create(connection=connection, body=dataset.entra_user(0), request=None).obj
    _check_builder(real, build(0, real.pk, 0), User, AttributeState, JournalChange)

    next_user = User.objects.order_by("-pk").values_list("pk", flat=True).first() + 1
    next_entry = (JournalEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    with transaction.atomic():
        for start in range(1, total, CHUNK):
            users, states, entries, changes = [], [], [], []
            for i in range(start, min(start + CHUNK, total)):
                u, s, e, c = build(i, next_user, next_entry)
                next_user += 1
                next_entry += 1
                users.append(u)
                states += s
                entries.append(e)
                changes += c
            _copy(db, User, users)
            _copy(db, AttributeState, states)
            _copy(db, JournalEntry, entries)
            _copy(db, JournalChange, changes)
        with db.cursor() as cursor:
            for model in (User, AttributeState, JournalEntry, JournalChange):
                table = model._meta.db_table
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
    # Leave the tables as a long-running production database would be: vacuumed
    # (visibility map set, so index-only scans work) and with fresh statistics.
    with db.cursor() as cursor:
        for model in (User, AttributeState, JournalEntry, JournalChange):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
        counts = {}
        for model in (User, AttributeState, JournalEntry, JournalChange):
            cursor.execute(f"SELECT count(*) FROM {model._meta.db_table}")
            counts[model._meta.db_table] = cursor.fetchone()[0]
    return {"token": token, "users": total, "connection_id": connection.pk, "rows": counts}


def _row_values(model, fields):
    from django.db.models import JSONField
    from psycopg.types.json import Jsonb

    def value(obj, field):
        v = getattr(obj, field.attname)
        if isinstance(field, JSONField) and v is not None:
            return Jsonb(v)
        return v

    return lambda obj: [value(obj, f) for f in fields]


def _copy(db, model, objects: list) -> None:
    if not objects:
        return
    # The primary key is written when the builder chose it, left to the sequence otherwise.
    fields = [
        f for f in model._meta.concrete_fields
        if not (f.primary_key and getattr(objects[0], f.attname) is None)
    ]
    row = _row_values(model, fields)
    columns = ", ".join(db.ops.quote_name(f.column) for f in fields)
    with db.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
            for obj in objects:
                copy.write_row(row(obj))


def _check_builder(real, built, User, AttributeState, JournalChange) -> None:
    """The bulk builder must produce what the real SCIM create path stored for user 0."""
    user, states, _entry, changes = built
    skip = {"id", "scim_id", "password", "date_joined", "updated_at", "last_login"}
    problems = []
    for field in User._meta.concrete_fields:
        if field.attname in skip:
            continue
        a, b = getattr(real, field.attname), getattr(user, field.attname)
        if a != b:
            problems.append(f"User.{field.attname}: SCIM path {a!r}, bulk {b!r}")
    real_states = {
        s.attribute: (s.idp_value, s.at_risk, s.idp_received_at is not None)
        for s in AttributeState.objects.filter(user=real)
    }
    bulk_states = {s.attribute: (s.idp_value, s.at_risk, True) for s in states}
    if real_states != bulk_states:
        problems.append(f"AttributeState: SCIM path {real_states!r}, bulk {bulk_states!r}")
    real_changes = sorted(
        (c.attribute, c.outcome, json.dumps(c.old_value), json.dumps(c.new_value))
        for c in JournalChange.objects.filter(entry__user=real)
    )
    bulk_changes = sorted((c.attribute, c.outcome, json.dumps(c.old_value), json.dumps(c.new_value)) for c in changes)
    if real_changes != bulk_changes:
        problems.append(f"JournalChange: SCIM path {real_changes!r}, bulk {bulk_changes!r}")
    if problems:
        raise SystemExit("benchmarks.seed: the bulk loader no longer matches the SCIM create path:\n  "
                         + "\n  ".join(problems))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
