"""Fill the benchmark database: one Entra connection, a token, N provisioned users.

    python -m benchmarks.seed USERS OUT.json      (DJANGO_SETTINGS_MODULE and DATABASE_URL set)

User 0 goes through the real SCIM create path (SCIMUserAdapter.create). The
others are built in Python exactly as that path builds them (same document
parser, same ownership rules, same value writer) and written with PostgreSQL
COPY: users, their AttributeState rows, and the "Provisioned" journal entry
with its changes. Before loading, the bulk builder's output for user 0 is
compared with what the real path stored, so the bulk load cannot drift
silently from what a SCIM POST creates.

Chunks of users are built by forked worker processes (they never touch the
database) while this process streams the previous chunk into COPY.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import multiprocessing
import os
import re
import sys
import time
import uuid

import django

CHUNK = 5000
TABLES = ("users", "states", "entries", "changes")

# Set by load() before the builder processes fork; read by _build_chunk in them.
_CONTEXT: dict = {}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    total, out_path = int(argv[0]), argv[1]
    if total < 1:
        raise SystemExit("benchmarks.seed: USERS must be at least 1")
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
    from mappings.catalogue import all_attributes
    from mappings.services import connection_create, token_create
    from scimsync.models import AttributeState, JournalChange, JournalEntry
    from scimsync.scim.adapters import SCIMUserAdapter
    from scimsync.sync.ownership import Ownership
    from users import page_index
    from users.models import User

    connection = connection_create(name="bench-entra", preset="entra")
    _, token = token_create(connection=connection, label="benchmark")
    now = timezone.now()
    models = {"users": User, "states": AttributeState, "entries": JournalEntry, "changes": JournalChange}

    # User 0 through the real SCIM create path, then the bulk builder checked against it.
    created = SCIMUserAdapter.create(connection=connection, body=dataset.entra_user(0), request=None).obj
    real = User.objects.get(pk=created.pk)  # as stored
    _CONTEXT.update(
        connection=connection, ownership=Ownership.for_connection(connection),
        attributes=all_attributes(), now=now, unusable=make_password(None),
        rows={name: _Rows(model, with_pk=name in ("users", "entries")) for name, model in models.items()},
        entry_fixed={"connection_id": connection.pk, "kind": JournalEntry.Kind.CREATE.value,
                     "source": "SCIM POST", "created_at": now},
    )
    _check_builder(real, _build_user(0, real.pk), User, AttributeState, JournalChange)

    _CONTEXT["first_user_pk"] = User.objects.order_by("-pk").values_list("pk", flat=True).first() + 1
    _CONTEXT["first_entry_pk"] = (JournalEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    timings = {"copy": 0.0}
    chunks = [(start, min(start + CHUNK, total)) for start in range(1, total, CHUNK)]
    procs = max(1, min(int(os.environ.get("BENCH_LOAD_PROCS", os.cpu_count() or 1)), len(chunks) or 1))
    t_load = time.monotonic()
    with transaction.atomic(), db.cursor() as cursor:
        # The rows are consistent by construction; skipping the per-row foreign
        # key triggers (superuser only) makes the load much faster.
        try:
            with transaction.atomic():
                cursor.execute("SET LOCAL session_replication_role = replica")
        except Exception:
            pass
        t0 = time.monotonic()
        rebuild = _drop_secondary_indexes(cursor, [m._meta.db_table for m in models.values()])
        timings["drop indexes"] = time.monotonic() - t0
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            for built in pool.imap(_build_chunk, chunks):
                t0 = time.monotonic()
                for name in TABLES:
                    _copy(cursor, _CONTEXT["rows"][name], built[name])
                timings["copy"] += time.monotonic() - t0
        t0 = time.monotonic()
        for statement in rebuild:
            cursor.execute(statement)
        timings["rebuild indexes"] = time.monotonic() - t0
        for model in models.values():
            table = model._meta.db_table
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
    timings["build+copy+commit"] = time.monotonic() - t_load
    # The replica role also skipped the triggers that count users per id range.
    t0 = time.monotonic()
    page_index.rebuild()
    timings["page index"] = time.monotonic() - t0
    if total > 1:  # read a COPY-loaded user back: the encoding must round-trip
        loaded = User.objects.get(pk=_CONTEXT["first_user_pk"])
        _check_builder(loaded, _build_user(1, loaded.pk), User, AttributeState, JournalChange,
                       skip={"last_login"}, label="COPY")
    # Leave the tables as a long-running production database would be: vacuumed
    # (visibility map set, so index-only scans work) and with fresh statistics.
    t0 = time.monotonic()
    counts = {}
    with db.cursor() as cursor:
        for model in models.values():
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
        for model in models.values():
            cursor.execute(f"SELECT count(*) FROM {model._meta.db_table}")
            counts[model._meta.db_table] = cursor.fetchone()[0]
    timings["vacuum"] = time.monotonic() - t0
    return {"token": token, "users": total, "connection_id": connection.pk, "rows": counts,
            "builder_processes": procs, "timings": {k: round(v, 1) for k, v in timings.items()}}


def _build_user(i: int, user_pk: int):
    """User i as SCIMUserAdapter.create -> services.user_provision would store it.

    Returns the unsaved User, its AttributeState values as (attribute,
    idp_value, at_risk) and its journal changes as (attribute, outcome, old, new).
    """
    from benchmarks import dataset
    from mappings.catalogue import get_attribute
    from scimsync.models import JournalChange
    from scimsync.scim.adapters import _clean_extras
    from scimsync.scim.documents import parse_user_document
    from scimsync.sync.services import compute_at_risk
    from scimsync.sync.values import normalize, read_value, same_value, write_value
    from users.models import User, name_key

    c = _CONTEXT
    ownership = c["ownership"]
    parsed = parse_user_document(dataset.entra_user(i), c["attributes"])
    received = dict(parsed.values)
    user = User(
        id=user_pk, connection=c["connection"], user_name=received["user_name"],
        scim_extras=_clean_extras(parsed.extras), scim_id=dataset.scim_id(i),
        password=c["unusable"], date_joined=c["now"], updated_at=c["now"],
    )
    user.user_name_key = name_key(user.user_name)
    changes = []
    for name, value in received.items():
        attribute = get_attribute(name)
        if ownership.applies_on_create(attribute) and normalize(value) is not None:
            write_value(user, attribute, value)
            changes.append((name, JournalChange.Outcome.APPLIED.value, None, normalize(value)))
    states = []
    for name, value in received.items():
        attribute = get_attribute(name)
        idp_value = normalize(value)
        if not ownership.overwrites_on_sync(attribute):
            current = read_value(user, attribute)
            if not same_value(current, idp_value):
                changes.append((name, JournalChange.Outcome.KEPT_LOCAL.value, current, idp_value))
        states.append((name, idp_value, compute_at_risk(user, attribute, _Sent(idp_value), ownership)))
    return user, states, changes


def _build_chunk(bounds: tuple[int, int]) -> dict[str, bytes]:
    """COPY text for users [start, stop): runs in a builder process, no database access."""
    c = _CONTEXT
    rows = c["rows"]
    out: dict[str, list[str]] = {name: [] for name in TABLES}
    start, stop = bounds
    for i in range(start, stop):
        user_pk = c["first_user_pk"] + i - 1
        entry_pk = c["first_entry_pk"] + i - 1
        user, states, changes = _build_user(i, user_pk)
        out["users"].append(rows["users"].line_of(user))
        for name, idp_value, at_risk in states:
            out["states"].append(rows["states"].line(
                user_id=user_pk, attribute=name, idp_value=idp_value,
                idp_received_at=c["now"], at_risk=at_risk,
            ))
        out["entries"].append(rows["entries"].line(
            id=entry_pk, user_id=user_pk, user_name=user.user_name, **c["entry_fixed"],
        ))
        for name, outcome, old, new in changes:
            out["changes"].append(rows["changes"].line(
                entry_id=entry_pk, attribute=name, outcome=outcome, old_value=old, new_value=new,
            ))
    return {name: "".join(lines).encode() for name, lines in out.items()}


class _Sent:
    """What compute_at_risk reads of an AttributeState the IdP has just sent."""

    idp_sent = True

    def __init__(self, idp_value):
        self.idp_value = idp_value


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")


@functools.lru_cache(maxsize=64)
def _isoformat(value) -> str:
    return value.isoformat()


class _Rows:
    """One model's rows in COPY text format: every concrete column, defaults from an unsaved instance."""

    def __init__(self, model, *, with_pk: bool):
        from django.db.models import JSONField

        self.model = model
        self.fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
        self.json = {n for n, f in enumerate(self.fields) if isinstance(f, JSONField)}
        self.index = {f.attname: n for n, f in enumerate(self.fields)}
        template = model()
        self.template = [self._text(n, getattr(template, f.attname)) for n, f in enumerate(self.fields)]

    def columns(self) -> str:
        from django.db import connection as db

        return ", ".join(db.ops.quote_name(f.column) for f in self.fields)

    def _text(self, n: int, value) -> str:
        if n in self.json:
            return r"\N" if value is None else json.dumps(value).translate(_ESCAPES)
        if type(value) is str:
            return value.translate(_ESCAPES) if _NEEDS_ESCAPE.search(value) else value
        if value is None:
            return r"\N"
        if isinstance(value, bool):
            return "t" if value else "f"
        if isinstance(value, (dt.datetime, dt.date)):
            return _isoformat(value)
        if isinstance(value, (int, uuid.UUID)):
            return str(value)
        if isinstance(value, str):
            return value.translate(_ESCAPES)
        raise TypeError(f"{self.model.__name__}.{self.fields[n].name}: cannot COPY {value!r}")

    def line(self, **values) -> str:
        row = list(self.template)
        for name, value in values.items():
            n = self.index[name]
            row[n] = self._text(n, value)
        return "\t".join(row) + "\n"

    def line_of(self, obj) -> str:
        return "\t".join(self._text(n, getattr(obj, f.attname)) for n, f in enumerate(self.fields)) + "\n"


def _drop_secondary_indexes(cursor, tables: list[str]) -> list[str]:
    """Drop the unique constraints and indexes of `tables` (primary keys stay); return how to rebuild them.

    Building an index once over loaded rows is much faster than maintaining
    it row by row; this is what pg_restore does. Inside the load's transaction,
    so a failure leaves the schema as it was.
    """
    rebuild: list[str] = []
    for table in tables:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'u'", [table],
        )
        for name, definition in cursor.fetchall():
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        cursor.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = %s::regclass AND NOT x.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)", [table],
        )
        for name, definition in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{name}"')
            rebuild.append(definition)
    return rebuild


def _copy(cursor, rows: _Rows, data: bytes) -> None:
    if not data:
        return
    raw = cursor.cursor  # the psycopg cursor under Django's wrapper
    with raw.copy(f"COPY {rows.model._meta.db_table} ({rows.columns()}) FROM STDIN") as copy:
        copy.write(data)


def _check_builder(real, built, User, AttributeState, JournalChange, *, skip=None, label="SCIM path") -> None:
    """The bulk builder must produce what the real SCIM create path stored for user 0.

    After the load, the same comparison of a COPY-loaded user with the builder
    checks the COPY encoding (label "COPY").
    """
    user, states, changes = built
    skip = {"id", "scim_id", "password", "date_joined", "updated_at", "last_login"} if skip is None else skip
    problems = []
    for field in User._meta.concrete_fields:
        if field.attname in skip:
            continue
        a, b = getattr(real, field.attname), getattr(user, field.attname)
        if a != b:
            problems.append(f"User.{field.attname}: {label} {a!r}, bulk {b!r}")
    real_states = {
        s.attribute: (s.idp_value, s.at_risk, s.idp_received_at is not None, s.local_edit_at)
        for s in AttributeState.objects.filter(user=real)
    }
    bulk_states = {name: (value, at_risk, True, None) for name, value, at_risk in states}
    if real_states != bulk_states:
        problems.append(f"AttributeState: {label} {real_states!r}, bulk {bulk_states!r}")
    real_changes = sorted(
        (c.attribute, c.outcome, json.dumps(c.old_value), json.dumps(c.new_value))
        for c in JournalChange.objects.filter(entry__user=real)
    )
    bulk_changes = sorted((a, o, json.dumps(old), json.dumps(new)) for a, o, old, new in changes)
    if real_changes != bulk_changes:
        problems.append(f"JournalChange: {label} {real_changes!r}, bulk {bulk_changes!r}")
    entries = list(real.journal.values_list("kind", "source"))
    if entries != [("create", "SCIM POST")]:
        problems.append(f"JournalEntry: {label} {entries!r}, bulk [('create', 'SCIM POST')]")
    if problems:
        raise SystemExit("benchmarks.seed: the bulk loader no longer matches the SCIM create path:\n  "
                         + "\n  ".join(problems))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
