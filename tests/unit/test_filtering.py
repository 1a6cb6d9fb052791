"""SCIM filters (RFC 7644 §3.4.2.2): parser, in-memory evaluator and SQL translation."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import pytest
from django.db.models import Q
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.catalogue import CUSTOM_USER, ENTERPRISE_USER
from mappings.models import Connection, CustomAttribute
from scimsync.scim.filtering import (
    FilterError,
    evaluate,
    groups_q,
    matches_entry,
    parse_filter,
    users_q,
)
from scimsync.scim.filtering.ast import And, AttrRef, Compare, Not, Or, Present, ValuePath
from users.models import Group, GroupMembership, User, name_key

ENT = ENTERPRISE_USER


def ref(attr: str, sub: str | None = None, urn: str | None = None) -> AttrRef:
    return AttrRef(urn, attr, sub)


# --- Parser -----------------------------------------------------------------------


def test_and_binds_tighter_than_or():
    """RFC 7644 §3.4.2.2 table 5: precedence is not, and, or."""
    a, b, c = (Present(ref(n)) for n in "abc")
    assert parse_filter("a pr or b pr and c pr") == Or(a, And(b, c))
    assert parse_filter("a pr and b pr or c pr") == Or(And(a, b), c)
    assert parse_filter("(a pr or b pr) and c pr") == And(Or(a, b), c)
    assert parse_filter("not (a pr) and b pr") == And(Not(a), b)


def test_operators_and_keywords_are_case_insensitive():
    """RFC 7644 §3.4.2.2: attribute names and operators are case-insensitive."""
    expected = Compare(ref("userName"), "eq", "x")
    assert parse_filter('userName EQ "x"') == expected
    assert parse_filter('userName Eq "x"') == expected
    assert parse_filter('a PR AND b pr OR NOT (c pr)') == Or(
        And(Present(ref("a")), Present(ref("b"))), Not(Present(ref("c")))
    )


def test_string_escapes_are_decoded_as_json():
    """RFC 7644 §3.4.2.2: compValue strings are JSON strings (RFC 7159 escapes)."""
    node = parse_filter(r'displayName eq "say \"hi\" \\ caf\u00e9"')
    assert node == Compare(ref("displayName"), "eq", 'say "hi" \\ café')


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), ("-7", -7), ("12345678", 12345678), ("3.25", 3.25), ("-0.5", -0.5),
     ("1e3", 1000.0),
     ("true", True), ("false", False), ("null", None), ('"true"', "true"), ('"42"', "42")],
)
def test_comp_values_keep_their_json_type(text, value):
    """RFC 7644 §3.4.2.2: compValue is false / null / true / number / string, typed as in JSON."""
    node = parse_filter(f"x eq {text}")
    assert node == Compare(ref("x"), "eq", value)
    assert type(node.value) is type(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name.familyName pr", ref("name", "familyName")),
        ("meta.lastModified pr", ref("meta", "lastModified")),
        (f"{ENT}:department pr", ref("department", urn=ENT)),
        (f"{ENT}:manager.value pr", ref("manager", "value", urn=ENT)),
        ("urn:ietf:params:scim:schemas:core:2.0:User:userName pr",
         ref("userName", urn="urn:ietf:params:scim:schemas:core:2.0:User")),
        ("members.$ref pr", ref("members", "$ref")),
    ],
)
def test_attribute_paths(text, expected):
    """RFC 7644 §3.10: attrPath = [URI ":"] ATTRNAME *1subAttr; the URN ends at the last colon."""
    assert parse_filter(text) == Present(expected)


def test_value_path():
    """RFC 7644 §3.4.2.2: valuePath = attrPath "[" valFilter "]"."""
    node = parse_filter('emails[type eq "work" and value co "@x"]')
    inner = And(Compare(ref("type"), "eq", "work"), Compare(ref("value"), "co", "@x"))
    assert node == ValuePath(ref("emails"), inner)


def test_entra_value_path_with_sub_attribute():
    """Entra's extension of RFC 7644 §3.4.2.2: `emails[type eq "work"].value eq "x"`."""
    node = parse_filter('emails[type eq "work"].value eq "x"')
    work = Compare(ref("type"), "eq", "work")
    assert node == ValuePath(ref("emails"), work, ("value", "eq", "x"))
    assert node.entry_filter == And(work, Compare(ref("value"), "eq", "x"))
    assert parse_filter('emails[type eq "work"].value pr').sub_compare == ("value", "pr", None)


@pytest.mark.parametrize(
    "text",
    [
        "", "   ",
        'userName eq "x" and',
        'userName eq "x" or',
        'and userName eq "x"',
        '(userName eq "x"',
        'userName eq "x")',
        'emails[type eq "work"',
        'emails type eq "work"]',
        'userName eq "x',
        'userName eq "bad \\q escape"',
        'userName eq "nul \\u0000"',
        'userName xx "x"',
        'userName eq',
        'userName eq bob',
        'userName',
        'emails[type eq "work"] eq "x"',
        'not userName eq "x"',
        'emails[addresses[type eq "work"]]',
        'name.givenName[value eq "x"]',
        'a.b.c pr',
        'userName co 5',
        'userName sw null',
        'active gt true',
        'x lt null',
        'x eq 1.2.3',
        'x eq "a" # comment',
        '(' * 60 + "a pr" + ")" * 60,
    ],
)
def test_syntax_errors_raise_filter_error(text):
    """RFC 7644 §3.12: a filter that cannot be parsed is a 400 invalidFilter."""
    with pytest.raises(FilterError):
        parse_filter(text)


@pytest.mark.parametrize(
    "text",
    [
        'userName eq "bjensen@example.com"',
        '  externalId   EQ   "ext-1"  ',
        'userName eq"x"',
        'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department co "Sales"',
        'name.familyName sw "J"',
        'emails.value ew "@example.com"',
        'title gt "M"',
        'userName eq "a \\"quoted\\" \\u00e9 name"',
        'userName eq ""',
        '$ref eq "x"',
        # shapes the fast path must leave to the parser, which refuses them
        'not eq "x"', 'and eq "x"', 'userName pr "x"', 'userName xx "x"', 'a.b.c eq "x"',
        'userName eq "\\u0000"', 'userName eq "\\ud800"', 'userName eq "x" and', '1a eq "x"',
        'user-name eq "x"', 'userName eq "x\\"',
    ],
)
def test_the_one_comparison_shortcut_parses_as_the_parser_does(text):
    """parse_filter reads `attr op "string"` without the tokenizer (the lookup every IdP
    sends before a write); RFC 7644 §3.4.2.2 has one meaning for it, the parser's."""
    from scimsync.scim.filtering.parser import _Parser, tokenize

    try:
        expected = _Parser(tokenize(text)).parse()
    except FilterError as error:
        with pytest.raises(FilterError) as raised:
            parse_filter(text)
        assert str(raised.value) == str(error)  # the parser's own message
        return
    assert parse_filter(text) == expected


@given(
    attr=st.from_regex(r"[A-Za-z$][\w:.$-]{0,12}", fullmatch=True),
    op=st.sampled_from(["eq", "EQ", "ne", "co", "Sw", "ew", "gt", "ge", "lt", "le", "pr", "and", "xx"]),
    literal=st.text(max_size=12).map(lambda t: json.dumps(t)),
    spaces=st.tuples(*[st.sampled_from(["", " ", "  ", "\t", "\u3000"])] * 4),
)
@settings(max_examples=400, deadline=None)
def test_the_one_comparison_shortcut_agrees_on_random_filters(attr, op, literal, spaces):
    """The same, on random attribute names, operators, JSON strings and whitespace."""
    from scimsync.scim.filtering.parser import _Parser, tokenize

    text = f"{spaces[0]}{attr}{spaces[1] or ' '}{op}{spaces[2]}{literal}{spaces[3]}"
    try:
        expected = _Parser(tokenize(text)).parse()
    except FilterError as error:
        with pytest.raises(FilterError, match=re.escape(str(error))):
            parse_filter(text)
        return
    assert parse_filter(text) == expected


def test_filter_length_is_limited():
    """RFC 7644 §3.4.2.2 leaves limits to the server; 10,000 characters caps parser work."""
    clause = 'userName eq "x" or '
    with pytest.raises(FilterError, match="longer"):
        parse_filter(clause * 600 + "a pr")


def test_long_or_chains_do_not_recurse():
    """RFC 7644 §3.4.2.2: long `or` chains (hundreds of ids) parse, evaluate and translate."""
    text = " or ".join(f'userName eq "user{i}"' for i in range(200))
    node = parse_filter(text)
    assert isinstance(node, Or)
    assert evaluate(node, {"userName": "USER199"})
    assert not evaluate(node, {"userName": "user200"})
    huge = parse_filter(" or ".join(f"x eq {i}" for i in range(800)))
    assert evaluate(huge, {"x": 799})
    assert isinstance(users_q(parse_filter(" and ".join(["title pr"] * 600))), Q)


# --- evaluate() -------------------------------------------------------------------

ALICE = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
    "id": "2819c223-7f76-453a-919d-413861904646",
    "externalId": "Ext-1",
    "userName": "Alice",
    "active": True,
    "title": "",
    "name": {"givenName": "Alice", "familyName": "Liddell"},
    "emails": [
        {"type": "work", "value": "alice@corp.example", "primary": True},
        {"type": "home", "value": "alice@home.example"},
    ],
    "addresses": [{"type": "work", "locality": "Paris"}],
    "x509Certificates": [],
    "score": 7,
    ENT: {"department": "R&D", "manager": {"value": "m-1"}},
    "meta": {"created": "2024-01-01T10:00:00Z", "lastModified": "2024-06-01T12:00:00+02:00"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "alice"', True),
        ('USERNAME eq "ALICE"', True),
        ('name.FAMILYNAME sw "lid"', True),
        ('userName ne "alice"', False),
        ('title ne "x"', True),
        ('nickName ne "x"', True),
        ('externalId eq "ext-1"', False),
        ('externalId eq "Ext-1"', True),
        ('id eq "2819C223-7F76-453A-919D-413861904646"', False),
        ('emails co "@home"', True),
        ('emails.value ew ".EXAMPLE"', True),
        ('emails.type eq "other"', False),
        ('emails[type eq "work" and value co "@corp"]', True),
        ('emails[type eq "work" and value co "@home"]', False),
        ('emails[type eq "home"].value eq "alice@home.example"', True),
        ('emails[type eq "work"].value eq "alice@home.example"', False),
        ('emails[not (type eq "work")]', True),
        ('addresses[type eq "work" and locality eq "paris"]', True),
        ('emails pr', True),
        ('title pr', False),
        ('x509Certificates pr', False),
        ('nickName pr', False),
        ('name pr', True),
        ('title eq null', True),
        ('userName eq null', False),
        ("active eq true", True),
        ('active eq "true"', False),
        ("active eq 1", False),
        ("score gt 6", True),
        ("score le 6.5", False),
        ('score eq "7"', False),
        ('userName gt "ALZ"', False),
        ('userName lt "alz"', True),
        (f'{ENT}:department eq "r&d"', True),
        (f'{ENT.upper()}:DEPARTMENT eq "r&d"', True),
        ('department eq "R&D"', True),
        ('manager.value eq "M-1"', True),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "Alice"', True),
        ('meta.lastModified eq "2024-06-01T10:00:00Z"', True),
        ('meta.lastModified gt "2024-06-01T11:00:00+02:00"', True),
        ('meta.created lt "2024-01-01T10:00:01"', True),
        ('meta.created ge "2025-01-01"', False),
        ('userName eq "bob" or (title pr or emails co "corp")', True),
    ],
)
def test_evaluate(text, expected):
    """RFC 7644 §3.4.2.2: operator semantics, case-insensitive strings, multi-valued "any" match."""
    assert evaluate(parse_filter(text), ALICE) is expected


def test_evaluate_rejects_an_invalid_date_time():
    """RFC 7644 §3.4.2.2: dateTime values are compared as dates, so they must parse."""
    with pytest.raises(FilterError):
        evaluate(parse_filter('meta.created gt "yesterday"'), ALICE)


def test_matches_entry_selects_patch_targets():
    """RFC 7644 §3.5.2: a PATCH valuePath selects the entries its filter matches."""
    node = parse_filter('type eq "WORK" and value co "corp"')
    assert [e["value"] for e in ALICE["emails"] if matches_entry(node, e)] == ["alice@corp.example"]
    member = {"value": "ABC", "display": "Bob"}
    assert matches_entry(parse_filter('value eq "abc"'), member)
    assert not matches_entry(parse_filter('value eq "abc"'), member, "members")
    assert matches_entry(parse_filter('DISPLAY eq "bob"'), member, "members")


# --- users_q / groups_q against the database --------------------------------------


@pytest.fixture
def people(db):
    CustomAttribute.objects.create(name="badgeNumber")
    alice = User.objects.create(
        user_name="Alice", connection=None, external_id="Ext-1", title="Engineer",
        given_name="Alice", family_name="Liddell", email_work="alice@corp.example",
        email_home="alice@home.example", phone_mobile="+33 6 00", department="R&D",
        address_work={"locality": "Paris", "country": "FR"},
        custom_attributes={"badgeNumber": "B-1"},
    )
    bob = User.objects.create(
        user_name="bob_smith", connection=None, external_id="ext-1", title="a_b",
        email_home="bob@corp.example", department="Sales", manager=alice, is_active=False,
        address_home={"locality": "Lyon"},
    )
    carol = User.objects.create(
        user_name="carol%x", connection=None, title="a%c", email_other="carol@x.example",
        date_joined=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    )
    dave = User.objects.create(user_name="Dåve", connection=None, title="abc")
    connection = Connection.objects.create(name="idp")
    admins = Group.objects.create(connection=connection, display_name="Admins", external_id="G-1")
    staff = Group.objects.create(connection=connection, display_name="Staff")
    for group, members in ((admins, [alice, bob]), (staff, [alice, carol])):
        GroupMembership.objects.bulk_create(GroupMembership(group=group, user=u) for u in members)
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "admins": admins,
            "staff": staff}


def names(text: str) -> set[str]:
    return set(User.objects.filter(users_q(parse_filter(text))).values_list("user_name", flat=True))


def group_names(text: str) -> set[str]:
    rows = Group.objects.filter(groups_q(parse_filter(text)))
    return set(rows.values_list("display_name", flat=True))


def test_username_eq_uses_the_indexed_key(people):
    """RFC 7643 §4.1.1: userName is case-insensitive; the NFC+casefold key column is indexed."""
    assert users_q(parse_filter('userName eq "ALICE"')) == Q(user_name_key=name_key("ALICE"))
    assert names('userName eq "ALICE"') == {"Alice"}
    assert names('userName eq "Da\u030ave"') == {"Dåve"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('USERNAME sw "BOB"', {"bob_smith"}),
        ('Name.FamilyName co "IDD"', {"Alice"}),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "alice"', {"Alice"}),
        ('URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:USERNAME eq "alice"', {"Alice"}),
        (f'{ENT}:department eq "r&d"', {"Alice"}),
        (f'{ENT.upper()}:DEPARTMENT eq "sales"', {"bob_smith"}),
        ('department ew "LES"', {"bob_smith"}),
        ('title eq "engineer"', {"Alice"}),
        ('title ne "engineer"', {"bob_smith", "carol%x", "Dåve"}),
        ('nickName ne "x"', {"Alice", "bob_smith", "carol%x", "Dåve"}),
        ("title pr", {"Alice", "bob_smith", "carol%x", "Dåve"}),
        ("nickName pr", set()),
        ("nickName eq null", {"Alice", "bob_smith", "carol%x", "Dåve"}),
        ('title gt "A_C"', {"Alice", "Dåve"}),
        ('userName lt "BOB"', {"Alice"}),
        ('externalId eq "ext-1"', {"bob_smith"}),
        ('externalId sw "E"', {"Alice"}),
        ("active eq false", {"bob_smith"}),
        ("not (active eq true)", {"bob_smith"}),
        ('title eq "engineer" or department eq "sales" and active eq false',
         {"Alice", "bob_smith"}),
    ],
)
def test_users_q_simple_attributes(people, text, expected):
    """RFC 7644 §3.4.2.2: operators on single-valued attributes; names are case-insensitive."""
    assert names(text) == expected


def test_like_wildcards_are_literal(people):
    """RFC 7644 §3.4.2.2: co/sw match substrings literally; % and _ are not wildcards."""
    assert names('title co "_"') == {"bob_smith"}
    assert names('title sw "a%"') == {"carol%x"}
    assert names('userName sw "carol%"') == {"carol%x"}
    assert names('emails co "_"') == set()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('emails co "corp"', {"Alice", "bob_smith"}),
        ('emails eq "BOB@corp.example"', {"bob_smith"}),
        ('emails.value sw "carol"', {"carol%x"}),
        ('emails ne "bob@corp.example"', {"Alice", "carol%x", "Dåve"}),
        ("emails pr", {"Alice", "bob_smith", "carol%x"}),
        ('emails.type eq "WORK"', {"Alice"}),
        ('emails[type eq "home" and value co "corp"]', {"bob_smith"}),
        ('emails[type eq "work" and value co "home"]', set()),
        ('emails[type eq "home"].value eq "alice@home.example"', {"Alice"}),
        ('emails[type eq "work"].value eq "bob@corp.example"', set()),
        ('emails[not (type eq "home")]', {"Alice", "carol%x"}),
        ('emails[type eq "home" and value ne "bob@corp.example"]', {"Alice"}),
        ('phoneNumbers[type eq "mobile"].value sw "+33"', {"Alice"}),
        ('phoneNumbers.type eq "fax"', set()),
        ('addresses[type eq "work" and locality eq "PARIS"]', {"Alice"}),
        ('addresses[type eq "home"].locality eq "paris"', set()),
        ('addresses.locality ne "Paris"', {"bob_smith", "carol%x", "Dåve"}),
        ('addresses.country pr', {"Alice"}),
        ("addresses pr", {"Alice", "bob_smith"}),
    ],
)
def test_users_q_multi_valued_attributes(people, text, expected):
    """RFC 7644 §3.4.2.2: a multi-valued attribute matches if any entry does; [] binds one entry."""
    assert names(text) == expected


def test_users_q_references_groups_and_custom(people):
    """RFC 7644 §3.10: groups, manager (unqualified extension name) and extension attributes."""
    alice, admins = people["alice"], people["admins"]
    assert names(f'manager eq "{alice.scim_id}"') == {"bob_smith"}
    assert names(f'{ENT}:manager.value eq "{alice.scim_id}"') == {"bob_smith"}
    assert names(f'manager ne "{alice.scim_id}"') == {"Alice", "carol%x", "Dåve"}
    assert names("manager pr") == {"bob_smith"}
    assert names(f'groups eq "{admins.scim_id}"') == {"Alice", "bob_smith"}
    assert names(f'groups.value eq "{admins.scim_id}" and groups.display eq "staff"') == {"Alice"}
    assert names(f'groups[value eq "{admins.scim_id}" and display eq "staff"]') == set()
    assert names(f'not (groups eq "{admins.scim_id}")') == {"carol%x", "Dåve"}
    assert names("groups pr") == {"Alice", "bob_smith", "carol%x"}
    assert names(f'{CUSTOM_USER}:badgenumber eq "b-1"') == {"Alice"}
    assert names(f'{CUSTOM_USER}:badgeNumber ne "b-1"') == {"bob_smith", "carol%x", "Dåve"}
    assert names(f"{CUSTOM_USER}:badgeNumber pr") == {"Alice"}


def test_users_q_ids(people):
    """RFC 7643 §3.1: id is case-exact; a malformed id matches nothing instead of failing."""
    alice = people["alice"]
    assert names(f'id eq "{alice.scim_id}"') == {"Alice"}
    assert names(f'id eq "{str(alice.scim_id).upper()}"') == set()
    assert names('id eq "not-a-uuid"') == set()
    assert names('id eq "not-a-uuid" or userName eq "bob_smith"') == {"bob_smith"}
    assert names(f'id ne "{alice.scim_id}"') == {"bob_smith", "carol%x", "Dåve"}


def test_users_q_dates(people):
    """RFC 7644 §3.4.2.2: gt/ge/lt/le on dateTime attributes compare chronologically."""
    assert names('meta.created lt "2021-01-01T00:00:00Z"') == {"carol%x"}
    assert len(names('meta.created ge "2020-01-01T01:00:00+01:00"')) == 4
    assert len(names('meta.lastModified gt "2020-01-01"')) == 4
    with pytest.raises(FilterError):
        users_q(parse_filter('meta.lastModified gt "last tuesday"'))


@pytest.mark.parametrize(
    "text",
    [
        'active eq "true"',
        "active eq 1",
        'nosuchAttribute eq "x"',
        'name eq "x"',
        'emails.primary eq true',
        'emails[display eq "x"]',
        'emails[foo eq "x"]',
        'addresses eq "Paris"',
        'title[value eq "x"]',
        'title eq 5',
        'meta.created co "2020"',
        'id gt "a"',
        f'{CUSTOM_USER}:nosuch eq "x"',
        'urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "x"',
    ],
)
def test_users_q_rejects_what_it_cannot_translate(people, text):
    """RFC 7644 §3.4.2.2: an unsupported filter is a 400 invalidFilter, never a dropped clause."""
    with pytest.raises(FilterError):
        users_q(parse_filter(text))


def test_groups_q(people):
    """RFC 7643 §4.2: Group filters on displayName, externalId, id and members."""
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    assert group_names('displayName eq "ADMINS"') == {"Admins"}
    assert group_names('displayName sw "st"') == {"Staff"}
    assert group_names('externalId eq "g-1"') == set()
    assert group_names(f'members eq "{bob.scim_id}"') == {"Admins"}
    a, c = alice.scim_id, carol.scim_id
    assert group_names(f'members eq "{a}" and members.value eq "{c}"') == {"Staff"}
    assert group_names(f'members[value eq "{a}" and value eq "{c}"]') == set()
    assert group_names(f'members eq "{str(bob.scim_id).upper()}"') == set()
    assert group_names(f'not (members eq "{bob.scim_id}")') == {"Staff"}
    assert group_names(f'id eq "{people["staff"].scim_id}"') == {"Staff"}
    assert group_names('meta.created gt "2000-01-01T00:00:00Z"') == {"Admins", "Staff"}
    assert Group.objects.filter(groups_q(parse_filter("members pr"))).count() == 2
    for bad in ('userName eq "x"', 'members.display eq "x"', 'members[type eq "User"]'):
        with pytest.raises(FilterError):
            groups_q(parse_filter(bad))


def test_long_or_chain_runs_in_sql(people):
    """RFC 7644 §3.4.2.2: a 200-clause `or` filter translates and runs without recursion errors."""
    ids = [uuid.uuid4() for _ in range(199)] + [people["carol"].scim_id]
    text = " or ".join(f'id eq "{i}"' for i in ids)
    assert names(text) == {"carol%x"}


def scim_json(user: User) -> dict:
    """The SCIM document of a test user, as the adapter renders it (non-empty values only)."""
    emails = [{"type": t, "value": getattr(user, f"email_{t}")} for t in ("work", "home", "other")]
    phones = [{"type": "mobile", "value": user.phone_mobile}]
    addresses = [{"type": t, **a} for t in ("work", "home") if (a := getattr(user, f"address_{t}"))]
    return {
        "id": str(user.scim_id), "externalId": user.external_id, "userName": user.user_name,
        "active": user.is_active, "title": user.title,
        "name": {"givenName": user.given_name, "familyName": user.family_name},
        "emails": [e for e in emails if e["value"]],
        "phoneNumbers": [p for p in phones if p["value"]],
        "addresses": addresses,
        "groups": [{"value": str(m.group.scim_id), "display": m.group.display_name}
                   for m in user.memberships.all()],
        ENT: {"department": user.department,
              "manager": {"value": str(user.manager.scim_id)} if user.manager else None},
        CUSTOM_USER: user.custom_attributes,
        "meta": {
            "created": user.date_joined.isoformat(), "lastModified": user.updated_at.isoformat(),
        },
    }


@pytest.mark.parametrize(
    "text",
    [
        'userName sw "a" or title co "_"',
        'emails[type eq "home"].value co "corp"',
        'emails ne "bob@corp.example" and not (title eq "abc")',
        'addresses.locality ne "paris"',
        'addresses[type eq "home" or locality eq "paris"]',
        'department pr and active eq true',
        'title ge "a_b"',
        'groups.display eq "admins" and not (groups.display eq "staff")',
        f'{CUSTOM_USER}:badgeNumber ew "1"',
        'meta.created gt "2021-01-01T00:00:00Z"',
        'phoneNumbers pr or manager.value pr',
    ],
)
def test_sql_and_python_agree(people, text):
    """RFC 7644 §3.4.2.2: one filter selects the same users in SQL as on their SCIM documents."""
    node = parse_filter(text)
    in_python = {u.user_name for u in User.objects.all() if evaluate(node, scim_json(u))}
    assert names(text) == in_python


@pytest.mark.django_db
@pytest.mark.parametrize("text", ['title gt "a-b"', 'userName le "b"', 'externalId lt "X"',
                                  f'{CUSTOM_USER}:badgeNumber ge "1"'])
def test_ordering_comparisons_use_code_point_order_on_postgresql(text):
    """RFC 7644 §3.4.2.2 gt/ge/lt/le compare lexicographically; scimsync uses code-point order
    everywhere (Python, SQLite, sortBy), so PostgreSQL must not use its database collation."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SQLite compares in code-point order (BINARY) already")
    CustomAttribute.objects.get_or_create(name="badgeNumber")
    sql = str(User.objects.filter(users_q(parse_filter(text))).query)
    assert 'COLLATE "C"' in sql, sql
