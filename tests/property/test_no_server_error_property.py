"""Property: whatever a client sends, the SCIM endpoint never answers 500, and a refused request
is a well-formed RFC 7644 §3.12 error that changed nothing.

Bodies are random JSON built from the names SCIM uses (so they reach deep
into the parsers) mixed with junk of every JSON type; filters are random
strings over the filter grammar's alphabet. tests/scim/test_malformed_corpus.py
holds the hand-written corpus with exact statuses; this looks for the cases
nobody thought of.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scimsync.models import AttributeState, JournalEntry
from users.models import Group, GroupMembership, User

pytestmark = [pytest.mark.django_db,
              pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")]

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
NAMES = ["userName", "title", "active", "name", "givenName", "emails", "phoneNumbers", "addresses", "value",
         "type", "primary", "members", "displayName", "externalId", "id", "meta", "schemas", "groups", "op",
         "path", "Operations", "manager", ENT, f"{ENT}:department", 'emails[type eq "work"].value',
         "name.familyName", "urn:example:ext:User", "", "\u00e9", "x" * 300]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                    st.sampled_from(["True", "false", "work", "", "a@example.com", "add", "replace", "remove"]),
                    st.text(max_size=20))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=5), inner, max_size=5)),
    max_leaves=12)
OPERATION = st.fixed_dictionaries(
    {}, optional={"op": st.sampled_from(["add", "Replace", "REMOVE", "move", ""]) | SCALARS,
                  "path": st.sampled_from(NAMES) | st.text(max_size=30), "value": JSON})
FILTER = st.text(alphabet='abeqnotrpw ()[]."\\:@-_0123456789', max_size=40) | st.sampled_from([
    'userName eq "a"', 'emails[type eq "work"]', 'not (title pr)', 'meta.lastModified gt "x"'])


def snapshot():
    return [list(m.objects.order_by("pk").values()) for m in (User, Group, GroupMembership, AttributeState, JournalEntry)]


def check_answer(response, before):
    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400:
        error = response.json()
        assert error["schemas"] == [ERROR] and error["status"] == str(response.status_code), error
        assert snapshot() == before


@pytest.fixture
def resources(scim_client):
    alex = scim_client.request("POST", "/Users", {"userName": "alex@example.com", "title": "Analyst"}).json()["id"]
    team = scim_client.request("POST", "/Groups", {"displayName": "Team", "members": [{"value": alex}]}).json()["id"]
    return {"alex": alex, "team": team}


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def test_random_bodies_never_cause_a_server_error(scim_client, resources):
    """RFC 7644 §3.12: random POST/PUT bodies on Users and Groups get 2xx or a SCIM 4xx, never 500."""
    @SETTINGS
    @given(body=JSON, target=st.sampled_from(["POST /Users", "PUT /Users/{alex}", "POST /Groups",
                                              "PUT /Groups/{team}"]))
    def check(body, target):
        method, path = target.split(" ")
        before = snapshot()
        check_answer(scim_client.request(method, path.format(**resources), body), before)

    check()


def test_random_patch_operations_never_cause_a_server_error(scim_client, resources):
    """RFC 7644 §3.5.2 / §3.12: random PatchOp bodies get 200 or a SCIM 4xx that applied nothing."""
    @SETTINGS
    @given(operations=st.lists(OPERATION, max_size=3) | JSON, target=st.sampled_from(["/Users/{alex}",
                                                                                      "/Groups/{team}"]))
    def check(operations, target):
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}
        before = snapshot()
        check_answer(scim_client.request("PATCH", target.format(**resources), body), before)

    check()


def test_random_filters_and_paging_never_cause_a_server_error(scim_client, resources):
    """RFC 7644 §3.4.2: any filter, sortBy, startIndex, count or attributes is 200 or a SCIM 400."""
    params = st.fixed_dictionaries({}, optional={
        "filter": FILTER, "sortBy": st.sampled_from(NAMES) | st.text(max_size=10),
        "sortOrder": st.sampled_from(["ascending", "DESCENDING", "x"]),
        "startIndex": st.integers(-5, 5).map(str) | st.text(max_size=3),
        "count": st.integers(-5, 5).map(str) | st.text(max_size=3),
        "attributes": st.sampled_from(NAMES) | st.text(max_size=10)})

    @SETTINGS
    @given(query=params, path=st.sampled_from(["/Users", "/Groups"]))
    def check(query, path):
        before = snapshot()
        check_answer(scim_client.request("GET", path, params=query), before)

    check()
