"""Filters the property test (tests/property/test_filter_property.py) found wrong, pinned over HTTP.

RFC 7644 §3.4.2.2: a comparison selects a resource only when the attribute
has a value that satisfies it (RFC 7643 §2.5: "" and null are no value), and
`ne` is the negation of `eq`; strings compare case-insensitively unless caseExact.
"""

from __future__ import annotations

import pytest

from tests.conftest import ENTERPRISE, USER_SCHEMA

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ids(scim):
    made = {}
    for body in (
        {"userName": "anna", "title": "Ingénieure", "externalId": "E-1"},
        {"userName": "ben"},  # no title, no externalId, no manager
    ):
        response = scim.post("/Users", {"schemas": [USER_SCHEMA], **body})
        assert response.status_code == 201, response.text
        made[body["userName"]] = response.json()["id"]
    scim.patch(f"/Users/{made['ben']}", [{"op": "add", "path": f"{ENTERPRISE}:manager", "value": made["anna"]}])
    return made


def selected(scim, text: str) -> set[str]:
    response = scim.get("/Users", params={"filter": text})
    assert response.status_code == 200, (text, response.text)
    return {r["userName"] for r in response.json()["Resources"]}


@pytest.mark.parametrize("text, expected", [
    ('title lt "z"', {"anna"}),      # was: ben too ("" < "z" in SQL)
    ('title le "z"', {"anna"}),
    ('title co ""', {"anna"}),        # was: ben too (LIKE '%%')
    ('title eq ""', set()),
    ('title ne ""', {"anna", "ben"}),
    ('not (title lt "z")', {"ben"}),
    ('externalId sw ""', {"anna"}),  # was: 500 (LEFT(x, 0))
    ('externalId ew "1"', {"anna"}),
])
def test_comparisons_need_a_value(scim, ids, text, expected):
    """RFC 7644 §3.4.2.2 with RFC 7643 §2.5: an attribute without a value satisfies no operator but ne."""
    assert selected(scim, text) == expected


def test_substring_operators_on_ids_read_the_hyphenated_form(scim, ids):
    """RFC 7643 §3.1: an id is the string the server returned (8-4-4-4-12 hex); co/sw/ew compare
    with that string on every database (SQLite stores the 32 digits without hyphens)."""
    anna = ids["anna"]
    assert selected(scim, f'id sw "{anna[:9]}"') == {"anna"}  # the prefix ends with a hyphen
    assert selected(scim, f'id ew "-{anna[-12:]}"') == {"anna"}
    assert selected(scim, 'id co "-"') == {"anna", "ben"}
    assert selected(scim, f'id sw "{anna[:8].upper()}"') == (set() if anna[:8] != anna[:8].upper() else {"anna"})
    assert selected(scim, f'{ENTERPRISE}:manager.value sw "{anna[:9].upper()}"') == {"ben"}  # not caseExact
    assert selected(scim, f'not ({ENTERPRISE}:manager.value co "-")') == {"anna"}


def test_non_ascii_strings_compare_case_insensitively(scim, ids):
    """RFC 7644 §3.4.2.2: "caseExact false" holds for every letter, not only ASCII ones."""
    assert selected(scim, 'title eq "INGÉNIEURE"') == {"anna"}
    assert selected(scim, 'title co "NIEUR"') == {"anna"}
    assert selected(scim, 'title sw "ingÉ"') == {"anna"}


@pytest.mark.parametrize("op", ["gt", "ge", "lt", "le", "co", "sw", "ew"])
def test_ordering_and_substring_operators_on_a_boolean_are_invalid_filters(scim, ids, op):
    """RFC 7644 §3.4.2.2: gt/ge/lt/le on a boolean "SHALL cause a failed response" (400
    invalidFilter); co/sw/ew compare strings. Before, `active gt false` quietly meant `active eq false`."""
    response = scim.get("/Users", params={"filter": f"active {op} false"})
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidFilter"
    assert selected(scim, "active ne false") == {"anna", "ben"}
