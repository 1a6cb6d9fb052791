"""scimsync.scim.patch answers `members[value eq "…"]` without evaluating the filter per entry;
it must select exactly the entries the filter evaluation (filtering.evaluate.matches_entry) does."""

from __future__ import annotations

import pytest

from scimsync.scim.filtering import parse_filter
from scimsync.scim.filtering.evaluate import matches_entry
from scimsync.scim.patch import GROUP_SHAPE, _entry_key, _value_equals, apply_operations

VALUES = ["Ann", "ANN", "ann", "\u00c5sa", "A\u030asa", "x", "", "ß", "SS", "42"]
ENTRIES = [{"value": v} for v in VALUES] + [{"value": 42}, {"value": True}, {"display": "no value"}]


@pytest.mark.parametrize("wanted", ["ann", "\u00c5SA", "ss", "42", "", "nobody"])
def test_the_shortcut_selects_what_the_filter_selects(wanted):
    node = parse_filter(f'value eq "{wanted}"')
    key = _value_equals(node)
    assert key is not None
    assert [e for e in ENTRIES if _entry_key(e.get("value")) == key] == [e for e in ENTRIES if matches_entry(node, e)]


@pytest.mark.parametrize("text", ['value ne "ann"', 'value co "a"', 'display eq "x"', 'value eq 42',
                                  'value eq "a" and display eq "b"', 'value pr'])
def test_other_filters_are_left_to_the_evaluation(text):
    assert _value_equals(parse_filter(text)) is None


def test_many_removes_by_filter_take_out_exactly_the_members_named():
    members = [{"value": f"id-{n}"} for n in range(3000)]
    doc = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G", "members": members}
    gone = {f"id-{n}" for n in range(0, 3000, 7)}
    ops = [{"op": "remove", "path": f'members[value eq "{v.upper()}"]'} for v in sorted(gone)]
    after, _ = apply_operations(doc, ops, GROUP_SHAPE)
    assert {m["value"] for m in after["members"]} == {m["value"] for m in members} - gone
