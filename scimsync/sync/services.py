"""The sync engine: every write to a provisioned user's profile goes through here.

The SCIM adapter, the admin, the REST API and the Celery tasks call these
functions and nothing else, so an edit is flagged and journaled the same way
whichever door it came in by. Each function is atomic and writes its journal
entry in the same transaction as the change (DESIGN.md, "Sync of a user").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db import connection as db
from django.db.models import F
from django.utils import timezone

from mappings.catalogue import BUILTIN_ATTRIBUTES, Attribute, Kind, all_attributes, get_attribute
from mappings.models import AttributeMapping, Connection, MappingChange
from mappings.presets import preset_mapped_attributes
from scimsync import rawsql
from scimsync.batch import Batch, Ref
from scimsync.models import AttributeState, JournalChange, JournalEntry, SyncRun
from scimsync.sync.ownership import Ownership, owner_of
from scimsync.sync.values import InvalidValue, normalize, read_value, same_value, write_value
from users import page_index
from users.models import ExtraEntry, Group, User, name_key
from users.selectors import attribute_states_of, users_with_relations


@dataclass(frozen=True)
class Actor:
    """Who or what made a change, as the journal shows it."""

    label: str
    user: User | None = None
    sync_run: SyncRun | None = None

    @classmethod
    def person(cls, user: User) -> Actor:
        return cls(label=user.user_name, user=user)


@dataclass
class SyncOutcome:
    """What one push or sync did to one user."""

    changes: list[JournalChange] = field(default_factory=list)

    @property
    def overwritten(self) -> int:
        return sum(1 for c in self.changes if c.outcome != JournalChange.Outcome.KEPT_LOCAL)

    @property
    def lost_edits(self) -> int:
        return sum(1 for c in self.changes if c.lost_edit)


class _StateBook:
    """The AttributeState rows of one user, loaded once and saved in bulk."""

    def __init__(self, user: User, rows: Iterable[AttributeState] | None = None):
        self.user = user
        if rows is None:
            rows = AttributeState.objects.filter(user=user)
        self.rows = {s.attribute: s for s in rows}
        self.touched: set[str] = set()

    def get(self, name: str) -> AttributeState | None:
        return self.rows.get(name)

    def get_or_new(self, name: str) -> AttributeState:
        if name not in self.rows:
            self.rows[name] = rawsql.new(AttributeState, user=self.user, attribute=name)
        self.touched.add(name)
        return self.rows[name]

    def mark(self, name: str) -> None:
        self.touched.add(name)

    def touched_rows(self) -> list[AttributeState]:
        return [self.rows[n] for n in self.touched]

    def save(self, batch: Batch | None = None, user: Ref | None = None) -> None:
        """Write the touched rows; with `batch`, as part of it (`user`: the batch inserts the user)."""
        if batch is None:
            _save_states(self.touched_rows())
        else:
            _add_states(batch, self.touched_rows(), user)


_STATE_FIELDS = ("idp_value", "idp_received_at", "local_edit_by", "local_edit_by_label",
                 "local_edit_at", "local_edit_before", "at_risk")


def _save_states(rows: list[AttributeState]) -> None:
    """Insert the new rows and update the others, in one statement on PostgreSQL (scimsync.batch)."""
    batch = Batch()
    _add_states(batch, rows)
    batch.execute()


def _add_states(batch: Batch, rows: list[AttributeState], user: Ref | None = None) -> None:
    """Add to `batch` the insert of the new rows (`user`: of a user the batch inserts) and the
    update of the others."""
    batch.insert(AttributeState, [r for r in rows if r.pk is None], parent=user and ("user_id", user))
    batch.update(AttributeState, [r for r in rows if r.pk is not None], _STATE_FIELDS)


def compute_at_risk(
    user: User, attribute: Attribute, state: AttributeState | None, ownership: Ownership
) -> bool:
    """DESIGN.md "At risk": mapped (apply=always) and the value differs from the IdP value.

    A value the IdP never sent is not at risk: a sync leaves it alone.
    """
    if state is None or not state.idp_sent or not ownership.overwrites_on_sync(attribute):
        return False
    return not same_value(read_value(user, attribute), state.idp_value)


def _refresh_flags(user: User, book: _StateBook, ownership: Ownership, attrs: Iterable[Attribute]):
    for attribute in attrs:
        state = book.get(attribute.short_name)
        if state is None:
            continue
        flag = compute_at_risk(user, attribute, state, ownership)
        if flag != state.at_risk:
            state.at_risk = flag
            book.mark(attribute.short_name)


def _forget_local_edit(state: AttributeState) -> None:
    state.local_edit_by = None
    state.local_edit_by_label = ""
    state.local_edit_at = None
    state.local_edit_before = None


def _journal(
    user: User, kind: str, actor: Actor, changes: list[JournalChange], *,
    batch: Batch | None = None, user_ref: Ref | None = None,
) -> JournalEntry:
    """The journal entry of a change and its per-attribute changes; with `batch`, as part
    of it (`user_ref`: the batch inserts the user too)."""
    entry = rawsql.new(
        JournalEntry, user=user, user_name=user.user_name, connection_id=user.connection_id, kind=kind,
        source=actor.label, actor=actor.user, sync_run=actor.sync_run,
    )
    for change in changes:
        change.entry = entry
    own = batch is None
    batch = Batch() if own else batch
    entry_ref = batch.insert(JournalEntry, [entry], parent=user_ref and ("user_id", user_ref))
    batch.insert(JournalChange, changes, parent=("entry_id", entry_ref))
    if own:
        batch.execute()
    return entry


def _save_user(user: User, fields: Iterable[str] | None = None, batch: Batch | None = None) -> None:
    """Save a changed user, bumping its version (the ETag); `fields`: only those columns,
    as part of `batch` when given."""
    user.version += 1
    if fields is None:
        user.save()
        return
    user.user_name_key = name_key(user.user_name)  # what User.save() does
    columns = sorted({*fields, "version", "updated_at"})
    if batch is None:
        rawsql.update(user, columns)
    else:
        batch.update(User, [user], columns)


def _sync_mapped(user: User, book: _StateBook, ownership: Ownership, attrs: list[Attribute]):
    """Make every mapped (apply=always) attribute equal to its IdP value.

    Returns the journal changes: one per attribute overwritten, marking lost edits.
    """
    changes: list[JournalChange] = []
    for attribute in attrs:
        state = book.get(attribute.short_name)
        if state is None or not state.idp_sent or not ownership.overwrites_on_sync(attribute):
            continue
        current = read_value(user, attribute)
        if not same_value(current, state.idp_value):
            write_value(user, attribute, state.idp_value)
            lost = state.has_local_edit
            changes.append(
                rawsql.new(
                    JournalChange, attribute=attribute.short_name, old_value=current, new_value=state.idp_value,
                    outcome=JournalChange.Outcome.LOST_EDIT if lost else JournalChange.Outcome.APPLIED,
                    lost_edit=lost, lost_edit_by_label=state.local_edit_by_label,
                    lost_edit_at=state.local_edit_at,
                )
            )
        if state.has_local_edit:
            _forget_local_edit(state)
            book.mark(attribute.short_name)
    return changes


def _record_idp_values(
    user: User, book: _StateBook, ownership: Ownership, received: dict[str, Any], now,
    sent: Iterable[str] | None = None,
) -> list[JournalChange]:
    """Store what the IdP sent; return "recorded only" changes for local attributes."""
    kept_local: list[JournalChange] = []
    for name, value in received.items():
        attribute = get_attribute(name)
        state = book.get_or_new(name)
        value = normalize(value)
        if not ownership.overwrites_on_sync(attribute):
            current = read_value(user, attribute)
            if not same_value(current, value) and not (state.idp_sent and same_value(state.idp_value, value)):
                kept_local.append(
                    rawsql.new(
                        JournalChange, attribute=name, old_value=current, new_value=value,
                        outcome=JournalChange.Outcome.KEPT_LOCAL,
                    )
                )
        state.idp_value = value
        state.idp_received_at = now
    _mark_observed(user.connection_id, ownership, received if sent is None else sent, now)
    return kept_local


def _mark_observed(connection_id: int, ownership: Ownership, sent: Iterable[str], now) -> None:
    """The first time a connection's IdP sends an attribute, its mapping says so ("observed").

    `sent`: the attributes the request named, sent empty included; not those a PUT
    empties by leaving them out, nor the other types of an emails array.
    """
    new = [name for name in sent if name not in ownership.observed and name in ownership.by_attribute]
    if new:
        AttributeMapping.objects.filter(
            connection_id=connection_id, attribute__in=new, observed_at__isnull=True
        ).update(observed_at=now)


@transaction.atomic(savepoint=False)  # a taken userName fails the caller's transaction, as it should
def user_provision(
    *, connection: Connection, received: dict[str, Any], extras: dict, actor: Actor,
    sent: Iterable[str] | None = None, batch: Batch | None = None,
) -> User:
    """Create a user from an IdP's POST: mapped attributes (always or on_create) are seeded.

    Unmapped attributes are the product's: their IdP values are recorded, not applied.
    Raises django.db.IntegrityError when the userName is taken in this connection.

    The rows (user, states, journal) are written as one scimsync.batch.Batch: the
    caller's `batch` when given (the SCIM view adds its request-log row and executes
    it, and the IntegrityError comes from that execute()), else one of its own.
    """
    now = timezone.now()
    ownership = Ownership.for_connection(connection)
    user = rawsql.new(User, connection=connection, user_name=received["user_name"], scim_extras=extras)
    user.set_unusable_password()
    changes: list[JournalChange] = []
    for name, value in received.items():
        attribute = get_attribute(name)
        if ownership.applies_on_create(attribute) and normalize(value) is not None:
            write_value(user, attribute, value)
            changes.append(rawsql.new(JournalChange, attribute=name, old_value=None, new_value=normalize(value)))
    user.user_name_key = name_key(user.user_name)  # what User.save() does; a batch skips save()
    own = batch is None
    batch = Batch() if own else batch
    # The unique constraint finds a taken userName: no query before, no window after.
    user_ref = batch.insert(
        User, [user], conflict_error=f"userName {user.user_name!r} is already taken"
    )
    _index_extra_entries(user, before=None, batch=batch, user_ref=user_ref)
    book = _StateBook(user, rows=())  # a new user has no states to load
    changes += _record_idp_values(user, book, ownership, received, now, sent)
    _refresh_flags(user, book, ownership, [get_attribute(n) for n in received])
    book.save(batch, user_ref)
    _journal(user, JournalEntry.Kind.CREATE, actor, changes, batch=batch, user_ref=user_ref)
    _stamp_last_push(connection.pk, now, batch)
    if own:
        batch.execute()
    return user


@transaction.atomic(savepoint=False)  # the SCIM view's transaction: a savepoint would only cost
def user_receive_push(
    *, user: User, received: dict[str, Any], extras: dict | None, actor: Actor,
    states: list[AttributeState] | None = None, sent: Iterable[str] | None = None,
    batch: Batch | None = None,
) -> SyncOutcome:
    """Apply an IdP's PUT or PATCH of an existing user (DESIGN.md's four cases).

    `received` holds every attribute the IdP sent in this request, None for
    "sent empty". The push is a sync of the user: it re-asserts every mapped
    attribute from the IdP values, not only the ones in this request, so a
    locally edited mapped title is restored by a PATCH of the department.
    `sent` (default: the keys of `received`) names those the request named one
    by one, which mark the attribute observed from the IdP.

    With `states`, the caller holds the user's row lock in this transaction and
    passes the user as users.selectors.users_with_relations(lock=True) read it
    and its AttributeState rows read under that lock (the SCIM adapter needs
    both to apply a PATCH); without, they are locked and read here. The user
    instance is updated in place, so the caller can render what was stored.

    The writes go out as one scimsync.batch.Batch: the caller's `batch` when given
    (which the caller then executes in this transaction), else one of its own.
    """
    if states is None:
        user = users_with_relations("u.id = %s", [user.pk], lock=True)[0]
        states = attribute_states_of(user)
    now = timezone.now()
    ownership = Ownership.for_connection(user.connection_id)
    book = _StateBook(user, states)
    attrs = all_attributes()
    kept_local = _record_idp_values(user, book, ownership, received, now, sent)
    changes = _sync_mapped(user, book, ownership, attrs)
    _refresh_flags(user, book, ownership, attrs)
    changed_fields = {f for c in changes for f in _user_fields(get_attribute(c.attribute))}
    own = batch is None
    batch = Batch() if own else batch
    if extras is not None and extras != user.scim_extras:
        before, user.scim_extras = user.scim_extras, extras
        changed_fields.add("scim_extras")
        _index_extra_entries(user, before=before, batch=batch)
    if changed_fields:
        _save_user(user, changed_fields, batch)
    book.save(batch)
    outcome = SyncOutcome(changes + kept_local)
    if outcome.changes:
        _journal(user, JournalEntry.Kind.PUSH, actor, outcome.changes, batch=batch)
    _stamp_last_push(user.connection_id, now, batch)
    if own:
        batch.execute()
    return outcome


def _index_extra_entries(
    user: User, *, before: dict | None, batch: Batch, user_ref: Ref | None = None
) -> None:
    """Make the user's ExtraEntry rows the emails and phone numbers its scim_extras keeps.

    `before`: the extras the rows were made from (None: a new user, which has none,
    and which `batch` inserts as `user_ref`). Most pushes send no such entry and
    change none, and then write nothing.
    """
    wanted = ExtraEntry.values_of(user.scim_extras)
    had = ExtraEntry.values_of(before)
    if wanted == had:
        return
    if had:
        ExtraEntry.objects.filter(user=user).delete()
    batch.insert(ExtraEntry, [ExtraEntry(user=user, plural=p, type=t, value=v) for p, t, v in wanted],
                 parent=user_ref and ("user_id", user_ref))


# How stale Connection.last_push_at may be. It feeds the expected next sync (last
# push + a cadence of minutes or more) and the silent-connection warning; stamping
# every push would make concurrent pushes of one connection queue on its row lock.
LAST_PUSH_PRECISION = timedelta(seconds=30)


def _stamp_last_push(connection_id: int, now, batch: Batch) -> None:
    # Raw, in the push's batch: the ORM spent more building this UPDATE than PostgreSQL running it.
    table = db.ops.quote_name(Connection._meta.db_table)
    batch.raw(
        f"UPDATE {table} SET last_push_at = %s WHERE id = %s AND (last_push_at IS NULL OR last_push_at < %s)",
        [now, connection_id, now - LAST_PUSH_PRECISION],
    )


@transaction.atomic
def user_deprovision(*, user: User, actor: Actor) -> None:
    """An IdP's DELETE: the user goes; the journal keeps a "Deprovisioned" entry with the userName.

    References to the user go with it (RFC 7644 §3.6 leaves no resource pointing
    at a deleted one): each report's manager is cleared, and its IdP value for
    manager, which named this user, is recorded as sent empty, so the next push
    or sync of the report does not try to restore a manager who no longer
    exists (it would fail, and with it every push of that report). Each report's
    journal says so, and its version moves, as does that of each group it left.
    """
    now = timezone.now()
    manager_id = str(user.scim_id)
    reports = list(
        User.objects.select_for_update(of=("self",)).filter(connection_id=user.connection_id, manager_id=user.pk)
        .order_by("pk")
    )
    named = list(
        AttributeState.objects.select_for_update(of=("self",))
        .filter(user__connection_id=user.connection_id, attribute="manager", idp_value=manager_id)
        .exclude(user=user)
    )
    journal: dict[int, tuple[User, list[JournalChange]]] = {}
    for report in reports:
        report.manager = None
        report.version += 1
        report.updated_at = now
        journal[report.pk] = (report, [JournalChange(attribute="manager", old_value=manager_id, new_value=None)])
    User.objects.bulk_update(reports, ["manager", "version", "updated_at"])
    for state in named:
        state.idp_value, state.idp_received_at, state.at_risk = None, now, False
    _save_states(named)
    Group.objects.filter(memberships__user=user).update(version=F("version") + 1, updated_at=now)
    _journal_many(JournalEntry.Kind.PUSH, Actor(f"{actor.label} of manager {user.user_name}"),
                  list(journal.values()), now)
    JournalEntry.objects.create(
        user=None, user_name=user.user_name, connection_id=user.connection_id,
        kind=JournalEntry.Kind.DELETE, source=actor.label, actor=actor.user,
    )
    user.delete()


def user_sync(*, user: User, actor: Actor) -> SyncOutcome:
    """A deferred sync of one user: mapped attributes take their IdP values."""
    return users_sync(user_ids=[user.pk], actor=actor)


def _user_fields(attribute: Attribute) -> list[str]:
    """The users.User columns that write_value sets for an attribute."""
    if attribute.is_custom:
        return ["custom_attributes"]
    return ["user_name", "user_name_key"] if attribute.field == "user_name" else [_field_name(attribute)]


def _field_name(attribute: Attribute) -> str:
    assert attribute.field is not None, attribute
    return attribute.field


@transaction.atomic
def users_sync(*, user_ids: list[int], actor: Actor) -> SyncOutcome:
    """A deferred sync of many users at once; the same rules as a sync of each in turn.

    One transaction and a fixed number of queries per call, whatever the number
    of users: the users are locked in primary-key order (so concurrent batches
    and pushes, which lock one user, wait rather than deadlock), their states are
    read in one query, and users, states and journal are written in bulk. Users
    that no longer exist are skipped. Idempotent: a second call changes nothing.
    """
    users = list(
        User.objects.select_for_update(of=("self",)).select_related("manager")
        .filter(pk__in=user_ids).order_by("pk")
    )
    rows_by_user: dict[int, list[AttributeState]] = {}
    for state in AttributeState.objects.filter(user_id__in=[u.pk for u in users]):
        rows_by_user.setdefault(state.user_id, []).append(state)
    attrs = all_attributes()
    ownerships: dict[int, Ownership] = {}
    now = timezone.now()
    changed_users: list[User] = []
    changed_fields: set[str] = set()
    journal: list[tuple[User, list[JournalChange]]] = []
    states: list[AttributeState] = []
    for user in users:
        if user.connection_id not in ownerships:
            ownerships[user.connection_id] = Ownership.for_connection(user.connection_id)
        ownership = ownerships[user.connection_id]
        book = _StateBook(user, rows_by_user.get(user.pk, []))
        changes = _sync_mapped(user, book, ownership, attrs)
        _refresh_flags(user, book, ownership, attrs)
        states += book.touched_rows()
        if changes:
            user.version += 1
            user.updated_at = now  # auto_now is not applied by bulk_update
            if any(c.attribute == "user_name" for c in changes):
                user.user_name_key = name_key(user.user_name)
            changed_fields.update(f for c in changes for f in _user_fields(get_attribute(c.attribute)))
            changed_users.append(user)
            journal.append((user, changes))
    if changed_users:
        User.objects.bulk_update(changed_users, sorted(changed_fields | {"version", "updated_at"}), batch_size=500)
    _save_states(states)
    _journal_many(JournalEntry.Kind.SYNC, actor, journal, now)
    return SyncOutcome([c for _, changes in journal for c in changes])


def _journal_many(
    kind: str, actor: Actor, journal: list[tuple[User, list[JournalChange]]], now
) -> None:
    """_journal for many users: two INSERTs in all."""
    entries = JournalEntry.objects.bulk_create([
        JournalEntry(
            user=user, user_name=user.user_name, connection_id=user.connection_id, kind=kind,
            source=actor.label, actor=actor.user, sync_run=actor.sync_run, created_at=now,
        )
        for user, _ in journal
    ], batch_size=1000)
    for entry, (_, changes) in zip(entries, journal, strict=True):
        for change in changes:
            change.entry = entry
    JournalChange.objects.bulk_create([c for _, changes in journal for c in changes], batch_size=1000)


# What an IdP finds its users by: it looks a user up by userName (or externalId) before
# every write. Changed here, the next lookup misses and the IdP creates the user again (a
# duplicate with the same externalId), after which every push to the first one fails on
# the taken userName. So they are not edited locally for a provisioned user.
IDP_IDENTIFIERS = frozenset({"user_name", "external_id"})


def local_edit_refused(user: User, attribute: Attribute) -> str | None:
    """Why `attribute` of `user` cannot be edited in the product, or None when it can."""
    if user.connection_id is not None and attribute.short_name in IDP_IDENTIFIERS:
        return (f"is how the IdP finds this user ({attribute.scim_path}); change it in the IdP, "
                "which renames the user here at its next push")
    return None


def _check_local_name(user: User, attribute: Attribute, value: Any) -> None:
    """A local account's sign-in name: not blank, and no other local account's (compared as
    users.models.name_key compares them), so the rename is refused, not failed at the database."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(attribute, "a sign-in name cannot be blank")
    if User.objects.filter(connection__isnull=True, user_name_key=name_key(value)).exclude(pk=user.pk).exists():
        raise InvalidValue(attribute, f"{value!r} is the sign-in name of another local account")


@transaction.atomic
def user_local_edit(*, user: User, attribute: str, value: Any, actor: Actor) -> bool:
    """An edit made in the product. Kept, never refused; flagged at risk if mapped.

    Returns False when the value did not change. Raises InvalidValue for a value
    the attribute cannot hold, and for an identifier the IdP finds a provisioned
    user by (local_edit_refused), the one kind of attribute not edited locally.
    """
    user = User.objects.select_for_update(of=("self",)).select_related("manager").get(pk=user.pk)
    attr = get_attribute(attribute)
    if reason := local_edit_refused(user, attr):
        raise InvalidValue(attr, reason)
    if attr.short_name == "user_name":
        _check_local_name(user, attr, value)
    before = read_value(user, attr)
    if same_value(before, value):
        return False
    write_value(user, attr, value)
    _save_user(user)
    book = _StateBook(user)
    state = book.get_or_new(attribute)
    state.local_edit_before = before
    state.local_edit_by = actor.user
    state.local_edit_by_label = actor.label
    state.local_edit_at = timezone.now()
    if user.connection_id is not None:
        _refresh_flags(user, book, Ownership.for_connection(user.connection_id), [attr])
    book.save()
    _journal(
        user, JournalEntry.Kind.LOCAL_EDIT, actor,
        [JournalChange(attribute=attribute, old_value=before, new_value=normalize(value),
                       outcome=JournalChange.Outcome.EDITED)],
    )
    return True


@transaction.atomic
def user_revert_attribute(*, user: User, attribute: str, actor: Actor) -> bool:
    """Put the IdP value back now, dropping the local edit. False if the IdP never sent one.

    Raises InvalidValue when the IdP's userName is taken by another user of the
    connection (a duplicate the IdP created while the name was edited locally,
    which only older versions allowed): nothing is changed then.
    """
    user = User.objects.select_for_update(of=("self",)).select_related("manager").get(pk=user.pk)
    attr = get_attribute(attribute)
    book = _StateBook(user)
    state = book.get(attribute)
    if state is None or not state.idp_sent:
        return False
    current = read_value(user, attr)
    write_value(user, attr, state.idp_value)
    _forget_local_edit(state)
    state.at_risk = False
    book.mark(attribute)
    book.save()
    if not same_value(current, state.idp_value):
        try:
            with transaction.atomic():  # a savepoint: the caller learns why, its transaction goes on
                _save_user(user)
        except IntegrityError:
            raise InvalidValue(attr, f"{state.idp_value!r} is taken by another user of this connection "
                                     "(delete the duplicate, then revert)") from None
        _journal(
            user, JournalEntry.Kind.REVERT, actor,
            [JournalChange(attribute=attribute, old_value=current, new_value=state.idp_value)],
        )
    return True


@transaction.atomic
def lost_edit_restore(*, change: JournalChange, actor: Actor) -> None:
    """Bring a value a sync overwrote back, as a new local edit (at risk again if still mapped)."""
    change = JournalChange.objects.select_for_update(of=("self",)).select_related("entry__user").get(pk=change.pk)
    user = change.entry.user
    if user is None or not change.lost_edit or change.restored_at is not None:
        return
    user_local_edit(user=user, attribute=change.attribute, value=change.old_value, actor=actor)
    change.restored_at = timezone.now()
    change.save(update_fields=["restored_at"])


@dataclass(frozen=True)
class MappingImpact:
    """How a mapping change moves at-risk flags, counted in users."""

    now_at_risk: int
    no_longer_at_risk: int
    # Set when the connection was too large to move the flags inside the request: this
    # run moves them, and the counts above are zero until it has (MappingChange gets them).
    sync_run: SyncRun | None = None


def _flag_changes(
    connection: Connection | int, attribute: Attribute, ownership: Ownership, user_ids: list[int] | None = None
):
    """Yield (state, new_flag) for every user of the connection (or of `user_ids`) whose flag would change.

    Reads the state rows and, of each user, only the column the attribute lives in
    (read_value reads nothing else): a connection of 100,000 users is read in
    seconds rather than tens of them.
    """
    states = AttributeState.objects.filter(user__connection=connection, attribute=attribute.short_name)
    if user_ids is not None:
        states = states.filter(user_id__in=user_ids)
    states = (
        states.select_related("user__manager" if attribute.kind is Kind.REFERENCE else "user")
        .only("id", "user_id", "attribute", "idp_value", "idp_received_at", "at_risk", *_value_columns(attribute))
        .order_by("pk")
        .iterator(chunk_size=2000)
    )
    for state in states:
        flag = compute_at_risk(state.user, attribute, state, ownership)
        if flag != state.at_risk:
            yield state, flag


def _value_columns(attribute: Attribute) -> list[str]:
    """What read_value reads of a user for this attribute, as `only()` paths from a state."""
    if attribute.is_custom:
        return ["user__id", "user__custom_attributes"]
    if attribute.kind is Kind.REFERENCE:
        return ["user__id", "user__manager_id", "user__manager__id", "user__manager__scim_id"]
    return ["user__id", f"user__{_field_name(attribute)}"]


def _ownership_with(connection: Connection, attribute: str, state: str, apply: str) -> Ownership:
    current = Ownership.for_connection(connection)
    return Ownership({**current.by_attribute, attribute: owner_of(state, apply)})


def mapping_impact_preview(
    *, connection: Connection, attribute: str, state: str, apply: str
) -> MappingImpact:
    """What mapping_update would do to at-risk flags, changing nothing."""
    attr = get_attribute(attribute)
    ownership = _ownership_with(connection, attribute, state, apply)
    up = down = 0
    for _state, flag in _flag_changes(connection, attr, ownership):
        up, down = (up + 1, down) if flag else (up, down + 1)
    return MappingImpact(now_at_risk=up, no_longer_at_risk=down)


@transaction.atomic
def mapping_update(
    *, connection: Connection, attribute: str, state: str, apply: str = AttributeMapping.Apply.ALWAYS,
    actor: Actor,
) -> MappingImpact:
    """Change who owns an attribute; at-risk flags of every user move at once (DESIGN.md)."""
    attr = get_attribute(attribute)
    if attr.always_idp:
        raise ValueError(f"{attribute} is always owned by the IdP")
    mapping, _ = AttributeMapping.objects.select_for_update().get_or_create(
        connection=connection, attribute=attribute,
        defaults={"state": AttributeMapping.State.UNMAPPED},
    )
    before = f"{mapping.state}/{mapping.apply}"
    mapping.state, mapping.apply = state, apply
    mapping.save()
    if page_index.user_count(connection.pk) > settings.SCIMSYNC["INLINE_RECOMPUTE_MAX_USERS"]:
        # Too many users to move every flag before the response (about 2.5 s per 100,000
        # on PostgreSQL): a sync run moves them in batches, and pushes meanwhile flag
        # their users by the new mapping already (they read the mappings per request).
        from scimsync.sync.runs import flags_recompute_start

        run = flags_recompute_start(connection=connection, attribute=attribute, requested_by=actor.user)
        MappingChange.objects.create(connection=connection, attribute=attribute, before=before,
                                     after=f"{state}/{apply}", actor=actor.user, sync_run=run)
        return MappingImpact(now_at_risk=0, no_longer_at_risk=0, sync_run=run)
    ownership = Ownership.for_connection(connection)
    changed = list(_flag_changes(connection, attr, ownership))
    _set_flags(changed)
    impact = MappingImpact(
        now_at_risk=sum(1 for _, f in changed if f),
        no_longer_at_risk=sum(1 for _, f in changed if not f),
    )
    MappingChange.objects.create(
        connection=connection, attribute=attribute, before=before, after=f"{state}/{apply}",
        actor=actor.user, users_now_at_risk=impact.now_at_risk,
        users_no_longer_at_risk=impact.no_longer_at_risk,
    )
    return impact


def _set_flags(changed: list[tuple[AttributeState, bool]]) -> None:
    for row, flag in changed:
        row.at_risk = flag
    AttributeState.objects.bulk_update([row for row, _ in changed], ["at_risk"], batch_size=500)


@transaction.atomic
def users_recompute_flags(*, connection_id: int, user_ids: list[int], attribute: str) -> MappingImpact:
    """Set these users' at-risk flags on one attribute by the connection's current mapping.

    A batch of a flag-recompute run. Overwrites no value and journals nothing;
    idempotent. The users are locked in primary-key order first, as users_sync
    does, so a push or a local edit of one of them waits instead of racing the
    flag computed from its old value.
    """
    locked = list(User.objects.select_for_update().filter(pk__in=user_ids, connection_id=connection_id)
                  .order_by("pk").values_list("pk", flat=True))
    changed = list(_flag_changes(connection_id, get_attribute(attribute),
                                 Ownership.for_connection(connection_id), user_ids=locked))
    _set_flags(changed)
    return MappingImpact(now_at_risk=sum(1 for _, f in changed if f),
                         no_longer_at_risk=sum(1 for _, f in changed if not f))


def preset_mapping_changes(*, connection: Connection, preset: str) -> list[tuple[str, str, str]]:
    """(attribute, state, apply) for every mapping that differs from the preset's defaults.

    Built-in attributes follow mappings.presets; custom attributes are mapped by
    the generic preset only, as when they are created (mappings.services).
    """
    customs = [a.short_name for a in all_attributes() if a.is_custom]
    mapped = preset_mapped_attributes(preset) | (set(customs) if preset == Connection.Preset.GENERIC else set())
    current = {m.attribute: (m.state, m.apply) for m in AttributeMapping.objects.filter(connection=connection)}
    names = [a.short_name for a in BUILTIN_ATTRIBUTES if not a.always_idp] + customs
    changes = []
    for name in names:
        want = (AttributeMapping.State.MAPPED if name in mapped else AttributeMapping.State.UNMAPPED,
                AttributeMapping.Apply.ALWAYS)
        if current.get(name, (AttributeMapping.State.UNMAPPED, AttributeMapping.Apply.ALWAYS)) != want:
            changes.append((name, *want))
    return changes


@transaction.atomic
def connection_apply_preset(
    *, connection: Connection, preset: str, actor: Actor
) -> list[tuple[str, str, str, MappingImpact]]:
    """Switch a connection to a vendor preset: every mapping that differs goes through
    mapping_update, so flags move at once and each change is audited.

    Returns (attribute, state, apply, impact) per changed mapping.
    """
    changes = preset_mapping_changes(connection=connection, preset=preset)
    Connection.objects.filter(pk=connection.pk).update(preset=preset)
    connection.preset = preset
    return [
        (name, state, apply,
         mapping_update(connection=connection, attribute=name, state=state, apply=apply, actor=actor))
        for name, state, apply in changes
    ]
