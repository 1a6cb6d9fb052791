"""Property: random membership and rename PATCHes on a Group leave it as a reference model says
(RFC 7644 §3.5.2 on RFC 7643 §4.2 `members`, with the forms Entra and Okta send).

The model is a name and a set of member ids: add unions, replace sets, remove
by `members[value eq "id"]` or by a value list (Entra) takes out, remove of
`members` empties; a PATCH naming an id that is no user of this connection
fails whole (RFC 7644 §3.5.2: atomic) and changes nothing.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.django_db,
              pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")]

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
OP = {op: st.sampled_from([op, op.capitalize()]) for op in ("add", "replace", "remove")}


def operations(ids: list[str], stranger: str):
    some = st.lists(st.sampled_from(ids), min_size=1, max_size=4, unique=True)

    def add(chosen):
        return {"op": "add", "path": "members", "value": [{"value": i} for i in chosen]}, \
            lambda m: (m[0], m[1] | set(chosen))

    def replace(chosen):
        return {"op": "replace", "path": "members", "value": [{"value": i} for i in chosen]}, \
            lambda m: (m[0], set(chosen))

    def remove_listed(chosen):  # Entra: path "members" with the values to take out
        return {"op": "remove", "path": "members", "value": [{"value": i} for i in chosen]}, \
            lambda m: (m[0], m[1] - set(chosen))

    def remove_filtered(one):
        return {"op": "remove", "path": f'members[value eq "{one}"]'}, lambda m: (m[0], m[1] - {one})

    def rename(name, pathless):
        body = {"op": "replace", "value": {"displayName": name}} if pathless else \
            {"op": "replace", "path": "displayName", "value": name}
        return body, lambda m: (name, m[1])

    valid = st.one_of(
        some.map(add), some.map(replace), some.map(remove_listed), st.sampled_from(ids).map(remove_filtered),
        st.just(({"op": "remove", "path": "members"}, lambda m: (m[0], set()))),
        st.builds(rename, st.sampled_from(["Team", "Core Team", "Équipe"]), st.booleans()),
    )
    spelled = st.tuples(valid, st.sampled_from(["add", "replace", "remove"])).flatmap(
        lambda pair: OP[pair[0][0]["op"]].map(lambda name: ({**pair[0][0], "op": name}, pair[0][1])))
    invalid = st.just(({"op": "add", "path": "members", "value": [{"value": stranger}]}, None))
    return st.lists(st.one_of(spelled, spelled, spelled, invalid), min_size=1, max_size=4)


def test_random_membership_patches_match_the_reference_model(scim_client, other_connection_user):
    """RFC 7644 §3.5.2.1-3 on members and displayName, op names in any case, atomic on a member of
    another connection: the PATCH response and a GET equal the model."""
    ids = []
    for i in range(6):
        made = scim_client.request("POST", "/Users", {"userName": f"member{i}@example.com"})
        ids.append(made.json()["id"])
    counter = iter(range(10**6))

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(sequence=st.lists(operations(ids, other_connection_user), min_size=1, max_size=3))
    def check(sequence):
        name = f"group-{next(counter)}"
        group = scim_client.request("POST", "/Groups", {"schemas": [GROUP], "displayName": name,
                                                        "members": [{"value": ids[0]}]}).json()
        model = (name, {ids[0]})
        for ops in sequence:
            response = scim_client.request("PATCH", f"/Groups/{group['id']}",
                                           {"schemas": [PATCH_OP], "Operations": [o for o, _ in ops]})
            effects = [e for _, e in ops]
            if None in effects:
                assert response.status_code == 400 and response.json()["scimType"] == "invalidValue"
            else:
                assert response.status_code == 200, response.content
                for effect in effects:
                    model = effect(model)
            current = scim_client.request("GET", f"/Groups/{group['id']}").json()
            assert (current["displayName"], {m["value"] for m in current.get("members", [])}) == model, ops
        # Names are unique per connection: the next example may rename its group the same way.
        assert scim_client.request("DELETE", f"/Groups/{group['id']}").status_code == 204

    check()


@pytest.fixture
def other_connection_user(db):
    """A user of another connection: a member id this token must not be able to use."""
    from mappings.services import connection_create
    from users.models import User, name_key

    other = connection_create(name="Other tenant", preset="okta")
    user = User.objects.create(connection=other, user_name="charlie@example.com",
                               user_name_key=name_key("charlie@example.com"), scim_id=uuid.uuid4())
    return str(user.scim_id)
