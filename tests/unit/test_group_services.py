"""users.services: the one write path of provisioned groups (STYLE.md habit 2).

Each write is atomic (a refused member or name leaves the group, its members and
every version as they were), moves the group's version only when something
changed, and moves the version of every user whose `groups` it changes.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from mappings.services import connection_create
from users import services
from users.models import Group, GroupMembership, User, name_key

pytestmark = pytest.mark.django_db


def _users(connection, *names: str) -> list[User]:
    """Provisioned users made directly: the subject is the group write, not the user's."""
    return User.objects.bulk_create(
        User(connection=connection, user_name=n, user_name_key=name_key(n), password="!")
        for n in names
    )


def _ids(*users: User) -> list[str]:
    return [str(u.scim_id) for u in users]


def _versions(*users: User) -> list[int]:
    return [User.objects.get(pk=u.pk).version for u in users]


def _create(connection, *members: User, name: str = "Team", external_id: str | None = None):
    return services.group_create(connection=connection, display_name=name,
                                 external_id=external_id, member_ids=_ids(*members))


def _replace(group: Group, *members: User, name: str = "Team", external_id: str | None = None):
    return services.group_replace(group=group, display_name=name, external_id=external_id,
                                  member_ids=_ids(*members))


def _members(group: Group) -> list[int]:
    return sorted(GroupMembership.objects.filter(group=group).values_list("user_id", flat=True))


def _state(group: Group) -> tuple:
    """Everything a group write may change, read back from the database."""
    stored = Group.objects.get(pk=group.pk)
    return (stored.display_name, stored.external_id, stored.version, stored.updated_at,
            _members(group))


@pytest.fixture
def people(connection):
    return _users(connection, "ann", "ben", "cat")


@pytest.fixture
def stranger():
    """A user of another connection: never a member of this connection's groups."""
    return _users(connection_create(name="Other IdP", preset="generic"), "zed")[0]


def test_create_adds_members_and_moves_their_versions(connection, people):
    ann, ben, cat = people
    group = _create(connection, ben, ann, external_id="T-1")
    assert _state(group)[:3] == ("Team", "T-1", 1)
    assert _members(group) == [ann.pk, ben.pk]
    assert _versions(ann, ben, cat) == [2, 2, 1]  # cat is in no group: untouched


@pytest.mark.parametrize("member", ["unknown", "stranger"])
def test_create_with_an_unknown_member_leaves_nothing_behind(connection, people, stranger, member):
    """RFC 7644 §3.3: a create that fails creates nothing. Another connection's user is unknown."""
    missing = str(uuid.uuid4()) if member == "unknown" else str(stranger.scim_id)
    refused = f"no user with id {missing} in this connection$"
    with pytest.raises(services.UnknownMember, match=refused):
        services.group_create(connection=connection, display_name="Team", external_id=None,
                              member_ids=[*_ids(*people), missing])
    assert not Group.objects.exists()
    assert _versions(*people, stranger) == [1, 1, 1, 1]


def test_a_member_id_that_is_no_uuid_is_an_invalid_value_not_an_unknown_member(connection):
    with pytest.raises(services.InvalidGroupValue, match="member 'nope' is not a user id") as no:
        services.group_create(connection=connection, display_name="Team", external_id=None,
                              member_ids=["nope"])
    assert not isinstance(no.value, services.UnknownMember)
    assert not Group.objects.exists()


def test_names_are_unique_per_connection_as_compared_case_folded(connection):
    _create(connection, name="Équipe")
    with pytest.raises(services.GroupNameTaken, match="is already taken"):
        _create(connection, name="E\u0301QUIPE")  # NFC and case folding make it "équipe"
    assert _create(connection_create(name="Other IdP", preset="generic"), name="Équipe").pk


@pytest.mark.parametrize("display_name, external_id, message", [
    (None, None, "displayName is required"),
    ("  ", None, "displayName is required"),
    ("n" * 256, None, "displayName is 256 characters long; the limit is 255"),
    ("ß" * 200, None, "displayName is longer than 255 characters once case-folded"),
    ("Team", "e" * 256, "externalId is 256 characters long; the limit is 255"),
])
def test_values_no_column_can_hold_are_refused(connection, display_name, external_id, message):
    with pytest.raises(services.InvalidGroupValue, match=message):
        _create(connection, name=display_name, external_id=external_id)
    assert not Group.objects.exists()


def test_replace_with_an_unknown_member_changes_nothing(connection, people, stranger):
    """RFC 7644 §3.5.2: PATCH (which ends in group_replace) is atomic; so is PUT (§3.5.1)."""
    ann, ben, cat = people
    group = _create(connection, ann, ben, external_id="T-1")
    before, versions = _state(group), _versions(*people)
    with pytest.raises(services.UnknownMember):
        _replace(group, cat, stranger, name="Renamed", external_id="T-2")
    assert _state(group) == before
    assert _versions(*people) == versions


def test_replace_with_a_taken_name_changes_nothing(connection, people):
    ann, ben, _ = people
    _create(connection, name="Admins")
    group = _create(connection, ann)
    before, versions = _state(group), _versions(*people)
    with pytest.raises(services.GroupNameTaken, match="displayName 'ADMINS' is already taken"):
        _replace(group, ben, name="ADMINS")
    assert _state(group) == before
    assert _versions(*people) == versions


def test_a_rename_moves_the_version_of_every_member(connection, people):
    """Members show the group's name in their `groups` (RFC 7643 §4.1.2): their ETag must move."""
    ann, ben, cat = people
    group = _create(connection, ann, ben)
    stored = _replace(group, ann, ben, name="Core team")
    assert (stored.display_name, stored.version) == ("Core team", 2)
    assert _versions(ann, ben, cat) == [3, 3, 1]


def test_a_rename_that_also_drops_a_member_moves_the_version_of_the_one_who_left(connection, people):
    """Found by a break-it helper: a rename bumped only the members left in the group, so the
    user who left kept an ETag whose `groups` (RFC 7643 §4.1.2) still named it."""
    ann, ben, cat = people
    group = _create(connection, ann, ben)
    _replace(group, ann, name="Core team")
    assert _versions(ann, ben, cat) == [3, 3, 1]


def test_a_membership_change_moves_only_those_who_joined_or_left(connection, people):
    ann, ben, cat = people
    group = _create(connection, ann, ben)
    assert _replace(group, ben, cat).version == 2
    assert _members(group) == [ben.pk, cat.pk]
    assert _versions(ann, ben, cat) == [3, 2, 2]  # ann left, cat joined, ben stayed


def test_replacing_a_group_with_itself_moves_no_version(connection, people):
    """A repeated PUT or a repeated add changes nothing, so no ETag or lastModified moves."""
    ann, ben, _ = people
    group = _create(connection, ann, ben, external_id="T-1")
    before, versions = _state(group), _versions(*people)
    _replace(group, ben, ann, external_id="T-1")
    assert _state(group) == before
    assert _versions(*people) == versions


def test_replace_clears_the_external_id_and_every_member(connection, people):
    group = _create(connection, *people, external_id="T-1")
    stored = _replace(group)
    assert (stored.external_id, stored.version) == ("", 2)
    assert _members(group) == []
    assert _versions(*people) == [3, 3, 3]


def test_delete_moves_the_version_of_every_member(connection, people):
    ann, ben, cat = people
    group = _create(connection, ann, ben)
    services.group_delete(group=group)
    assert not Group.objects.filter(pk=group.pk).exists()
    assert not GroupMembership.objects.exists()
    assert _versions(ann, ben, cat) == [3, 3, 1]


def test_check_members_refuses_ids_of_no_user_of_the_connection(connection, people, stranger):
    """What a PATCH checks for members an operation added, even one a later operation removed."""
    check = services.group_check_members
    check(connection_id=connection.pk, member_ids=set(_ids(*people)))
    check(connection_id=connection.pk, member_ids=set())
    with pytest.raises(services.UnknownMember, match=str(stranger.scim_id)):
        check(connection_id=connection.pk, member_ids={str(stranger.scim_id)})
    with pytest.raises(services.InvalidGroupValue, match="member '5' is not a user id"):
        check(connection_id=connection.pk, member_ids={"5"})


def test_replace_costs_the_same_queries_for_one_member_and_for_a_thousand(connection):
    """One JSON parameter for the ids, one INSERT ... SELECT: the count does not grow."""
    few = _users(connection, "solo")
    many = _users(connection, *(f"member{i}" for i in range(1_000)))

    def queries(members: list[User]) -> int:
        group = _create(connection, name=f"g{len(members)}")
        with CaptureQueriesContext(db) as captured:
            _replace(group, *members, name=group.display_name)
        assert len(_members(group)) == len(members)
        return len(captured.captured_queries)

    assert queries(few) == queries(many)


@pytest.mark.skipif(db.vendor != "postgresql", reason="SQLite takes no row locks (no FOR UPDATE)")
def test_replace_locks_the_group_before_its_members(connection, people):
    """The locking order users.services promises: the group, then its users in primary-key
    order (as the sync engine locks them), so a group write and a user write cannot deadlock."""
    ann, ben, _ = people
    group = _create(connection, ann)
    with CaptureQueriesContext(db) as captured:
        _replace(group, ann, ben, name="Renamed")
    locks = [q["sql"] for q in captured.captured_queries if "FOR UPDATE" in q["sql"]]
    assert len(locks) == 2, locks
    assert '"users_group"' in locks[0].split("WHERE")[0]
    assert '"users_user"' in locks[1].split("WHERE")[0] and "ORDER BY" in locks[1]
