"""scimsync.scim.projection: `attributes` naming several sub-attributes of one attribute."""

from __future__ import annotations

from scimsync.scim import projection

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
DOC = {
    "schemas": [USER], "id": "1", "userName": "ann",
    "emails": [{"type": "work", "value": "ann@work.example", "primary": True},
               {"type": "home", "value": "ann@home.example"}],
}


def test_every_sub_attribute_named_is_kept_in_each_entry():
    """RFC 7644 §3.9: `attributes` is a list; emails.value and emails.type both stay.
    Before, the last sub-attribute named replaced the entries the first had picked."""
    doc = projection.project(DOC, "emails.value,emails.type", None)
    assert doc["emails"] == [{"type": "work", "value": "ann@work.example"},
                             {"type": "home", "value": "ann@home.example"}]
    assert "userName" not in doc


def test_the_whole_attribute_wins_over_one_of_its_sub_attributes_in_either_order():
    for asked in ("emails,emails.value", "emails.value,emails"):
        assert projection.project(DOC, asked, None)["emails"] == DOC["emails"], asked


def test_a_sub_attribute_no_entry_has_leaves_the_attribute_out():
    """RFC 7643 §2.5: unassigned attributes are omitted; `emails.nope` picks nothing."""
    assert "emails" not in projection.project(DOC, "emails.nope", None)
    assert projection.project(DOC, "emails.nope,emails.type", None)["emails"] == [{"type": "work"}, {"type": "home"}]
