"""The field cases tagged "ownership", with every `local` step going through the REST API.

The SCIM requests go to the live server as in tests/field_cases; the edits, mapping changes,
"sync now" and the reads of a value and its at-risk flag go to /api/v1/ over HTTP with a
read-write API key of alice, so the API is shown to reach DESIGN.md's four cases exactly as
the admin and the in-process runner do. The connection and its SCIM token are created through
the API too.
"""

from __future__ import annotations

import time

import pytest

from mappings.models import Connection, MappingChange
from scimsync.models import JournalEntry
from scimsync.sync.values import normalize
from tests.api.conftest import Api, key_for
from tests.conftest import ScimClient
from tests.field_cases.runner import CaseFailure, Replay, load_cases

def _has_local_steps(case: dict) -> bool:
    return any("local" in step for step in case["steps"]) or bool(case.get("mapping"))


# Every case about ownership, and any other case with a local step or mapping: those are the
# steps this file sends through the API rather than in process.
OWNERSHIP_CASES = [c for c in load_cases() if "ownership" in c.get("tags", []) or _has_local_steps(c)]
RUN_TIMEOUT = 30  # seconds a "sync now" may take before the case fails


class ApiReplay(Replay):
    """Replay whose local steps are REST calls; requests over SCIM are the runner's own."""

    MAPPINGS = {"mapped": ("mapped", "always"), "unmapped": ("unmapped", "always"), "on_create": ("mapped", "on_create")}

    def __init__(self, case: dict, client: ScimClient, connection: Connection, token: str, api: Api):
        super().__init__(case, client, connection, token)
        self.api = api
        self.user_ids: dict[str, int] = {}

    def call(self, label: str, method: str, path: str, expect: int = 200, **kwargs) -> dict:
        response = self.api.request(method, path, **kwargs)
        if response.status_code != expect:
            raise CaseFailure(f"{label}: {method} {path} answered {response.status_code}: {response.text[:1000]}")
        return response.json()

    def user_id(self, scim_id: str, label: str) -> int:
        """The API's id of the user the SCIM id names, found with the API's scim_id filter."""
        if scim_id not in self.user_ids:
            found = self.call(label, "GET", "/users/", params={"scim_id": scim_id})["results"]
            if len(found) != 1:
                raise CaseFailure(f"{label}: {len(found)} users with SCIM id {scim_id}")
            self.user_ids[scim_id] = found[0]["id"]
        return self.user_ids[scim_id]

    def map(self, attribute: str, to: str, label: str = "mapping") -> None:
        state, apply = self.MAPPINGS[to]
        self.call(label, "PUT", f"/connections/{self.connection.pk}/mappings/{attribute}/",
                  json={"state": state, "apply": apply})

    def local(self, local: dict, label: str) -> None:
        local = self.sub(local)
        if "edit" in local:
            edit = local["edit"]
            user = self.user_id(edit["user"], label)
            self.call(label, "PUT", f"/users/{user}/attributes/{edit['attribute']}/", json={"value": edit["value"]})
        elif "map" in local:
            self.map(local["map"]["attribute"], local["map"]["to"], label)
        elif "sync" in local:
            self.sync_now(self.user_id(local["sync"]["user"], label), label)
        elif "expect" in local:
            want = local["expect"]
            user = self.user_id(want["user"], label)
            row = self.call(label, "GET", f"/users/{user}/attributes/{want['attribute']}/")
            if "value" in want and normalize(row["current"]) != normalize(want["value"]):
                raise CaseFailure(f"{label}: {want['attribute']} is {row['current']!r}, expected {want['value']!r}")
            if "at_risk" in want and row["at_risk"] != want["at_risk"]:
                raise CaseFailure(f"{label}: at_risk of {want['attribute']} is {row['at_risk']}, "
                                  f"expected {want['at_risk']}")
        else:
            raise CaseFailure(f"{label}: unknown local step {local}")

    def sync_now(self, user: int, label: str) -> None:
        """"Sync now" for one user: create the run, then poll it until it has finished."""
        run = self.call(label, "POST", "/sync-runs/", expect=201, json={"users": [user]})
        deadline = time.monotonic() + RUN_TIMEOUT
        while run["state"] not in ("succeeded", "failed"):
            if time.monotonic() > deadline:
                raise CaseFailure(f"{label}: sync run {run['id']} still {run['state']} after {RUN_TIMEOUT} s")
            time.sleep(0.1)
            run = self.call(label, "GET", f"/sync-runs/{run['id']}/")
        if run["state"] != "succeeded" or run["users_done"] != 1:
            raise CaseFailure(f"{label}: sync run {run['id']} ended {run['state']}: {run['error']}")


def test_the_ownership_cases_are_there():
    """Guards the selection: an empty list would make the replay below pass vacuously."""
    assert len(OWNERSHIP_CASES) >= 6
    assert all(any("local" in step for step in c["steps"]) for c in OWNERSHIP_CASES if "ownership" in c["tags"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("case", OWNERSHIP_CASES, ids=[c["id"] for c in OWNERSHIP_CASES])
def test_ownership_case_through_the_api(case, live_server, alice):
    api = Api(live_server.url, key_for(alice))
    created = api.post("/connections/", json={"name": f"field case {case['id']}", "preset": "generic"})
    assert created.status_code == 201, created.text
    token = api.post(f"/connections/{created.json()['id']}/tokens/", json={"label": "field cases"})
    assert token.status_code == 201, token.text
    plaintext = token.json()["token"]
    client = ScimClient(live_server.url + "/scim/v2", plaintext)
    connection = Connection.objects.get(pk=created.json()["id"])
    ApiReplay(case, client, connection, plaintext, api).run()

    # The local steps reached the services as alice (through her key), like the admin's edits.
    edits = JournalEntry.objects.filter(connection=connection, kind=JournalEntry.Kind.LOCAL_EDIT)
    assert {e.source for e in edits} <= {"alice via API key tests read_write"}
    assert {e.actor_id for e in edits} <= {alice.pk}
    assert set(MappingChange.objects.filter(connection=connection).values_list("actor", flat=True)) <= {alice.pk}
