"""Fill the benchmark database: one Entra connection, a token, N provisioned users.

    python -m benchmarks.seed USERS OUT.json      (DJANGO_SETTINGS_MODULE and DATABASE_URL set)

User 0 goes through the real SCIM create path (SCIMUserAdapter.create). The
others are built in Python exactly as that path builds them (same document
parser, same ownership rules, same value writer) and written with PostgreSQL
COPY: users, their AttributeState rows, and the "Provisioned" journal entry
with its changes. Before loading, the bulk builder's output for user 0 is
compared with what the real path stored, so the bulk load cannot silently
drift from what a SCIM POST creates.
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

    def build(i: int, user_pk: int):
        """User i as SCIMUserAdapter.create -> services.user_provision would store it.

        Returns the unsaved User, its AttributeState values as (attribute,
        idp_value, at_risk) and its journal changes as (attribute, outcome,
        old, new): plain data, so 100k users build in seconds.
        """
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
                changes.append((name, applied, None, normalize(value)))
        states = []
        for name, value in received.items():
            attribute = get_attribute(name)
            idp_value = normalize(value)
            if not ownership.overwrites_on_sync(attribute):
                current = read_value(user, attribute)
                if not same_value(current, idp_value):
                    changes.append((name, kept_local, current, idp_value))
            at_risk = compute_at_risk(user, attribute, _Sent(idp_value), ownership)
            states.append((name, idp_value, at_risk))
        return user, states, changes

    applied, kept_local = JournalChange.Outcome.APPLIED.value, JournalChange.Outcome.KEPT_LOCAL.value

    # User 0 through the real SCIM create path, then the bulk builder checked against it.
    real = SCIMUserAdapter.create(connection=connection, body=dataset.entra_user(0), request=None).obj
    _check_builder(real, build(0, real.pk), User, AttributeState, JournalChange)

    next_user = User.objects.order_by("-pk").values_list("pk", flat=True).first() + 1
    next_entry = (JournalEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    with transaction.atomic(), db.cursor() as cursor:
        # The rows are consistent by construction; skipping the per-row foreign
        # key triggers (superuser only) makes the load several times faster.
        try:
            with transaction.atomic():
                cursor.execute("SET LOCAL session_replication_role = replica")
        except Exception:
            pass
        for start in range(1, total, CHUNK):
            users = _Rows(User, with_pk=True)
            states = _Rows(AttributeState, with_pk=False)
            entries = _Rows(JournalEntry, with_pk=True, connection_id=connection.pk,
                            kind=JournalEntry.Kind.CREATE.value, source="SCIM POST", created_at=now)
            changes = _Rows(JournalChange, with_pk=False)
            for i in range(start, min(start + CHUNK, total)):
                user, user_states, user_changes = build(i, next_user)
                users.add_instance(user)
                for name, idp_value, at_risk in user_states:
                    states.add(user_id=next_user, attribute=name, idp_value=idp_value,
                               idp_received_at=now, at_risk=at_risk)
                entries.add(id=next_entry, user_id=next_user, user_name=user.user_name)
                for name, outcome, old, new in user_changes:
                    changes.add(entry_id=next_entry, attribute=name, outcome=outcome,
                                old_value=old, new_value=new)
                next_user += 1
                next_entry += 1
            for rows in (users, states, entries, changes):
                rows.copy(cursor)
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


class _Sent:
    """What compute_at_risk reads of an AttributeState the IdP has just sent."""

    idp_sent = True

    def __init__(self, idp_value):
        self.idp_value = idp_value


class _Rows:
    """Rows of one model for COPY: every concrete column, defaults from an unsaved instance."""

    def __init__(self, model, *, with_pk: bool, **fixed):
        from django.db.models import JSONField

        self.model = model
        self.fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
        self.json = {n for n, f in enumerate(self.fields) if isinstance(f, JSONField)}
        self.index = {f.attname: n for n, f in enumerate(self.fields)}
        template = model(**fixed)
        self.template = [self._prep(n, getattr(template, f.attname)) for n, f in enumerate(self.fields)]
        self.rows: list[list] = []

    def _prep(self, n: int, value):
        from psycopg.types.json import Jsonb

        return Jsonb(value) if n in self.json and value is not None else value

    def add(self, **values) -> None:
        row = list(self.template)
        for name, value in values.items():
            n = self.index[name]
            row[n] = self._prep(n, value)
        self.rows.append(row)

    def add_instance(self, obj) -> None:
        self.rows.append([self._prep(n, getattr(obj, f.attname)) for n, f in enumerate(self.fields)])

    def copy(self, cursor) -> None:
        if not self.rows:
            return
        from django.db import connection as db

        columns = ", ".join(db.ops.quote_name(f.column) for f in self.fields)
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY {self.model._meta.db_table} ({columns}) FROM STDIN") as copy:
            for row in self.rows:
                copy.write_row(row)


def _check_builder(real, built, User, AttributeState, JournalChange) -> None:
    """The bulk builder must produce what the real SCIM create path stored for user 0."""
    user, states, changes = built
    skip = {"id", "scim_id", "password", "date_joined", "updated_at", "last_login"}
    problems = []
    for field in User._meta.concrete_fields:
        if field.attname in skip:
            continue
        a, b = getattr(real, field.attname), getattr(user, field.attname)
        if a != b:
            problems.append(f"User.{field.attname}: SCIM path {a!r}, bulk {b!r}")
    real_states = {
        s.attribute: (s.idp_value, s.at_risk, s.idp_received_at is not None, s.local_edit_at)
        for s in AttributeState.objects.filter(user=real)
    }
    bulk_states = {name: (value, at_risk, True, None) for name, value, at_risk in states}
    if real_states != bulk_states:
        problems.append(f"AttributeState: SCIM path {real_states!r}, bulk {bulk_states!r}")
    real_changes = sorted(
        (c.attribute, c.outcome, json.dumps(c.old_value), json.dumps(c.new_value))
        for c in JournalChange.objects.filter(entry__user=real)
    )
    bulk_changes = sorted((a, o, json.dumps(old), json.dumps(new)) for a, o, old, new in changes)
    if real_changes != bulk_changes:
        problems.append(f"JournalChange: SCIM path {real_changes!r}, bulk {bulk_changes!r}")
    entries = list(real.journal.values_list("kind", "source"))
    if entries != [("create", "SCIM POST")]:
        problems.append(f"JournalEntry: SCIM path {entries!r}, bulk [('create', 'SCIM POST')]")
    if problems:
        raise SystemExit("benchmarks.seed: the bulk loader no longer matches the SCIM create path:\n  "
                         + "\n  ".join(problems))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
