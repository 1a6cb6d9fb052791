"""Every case in ../shared/field-cases/, replayed over HTTP by one generic runner.

A case that this build does not pass yet is listed in KNOWN_GAPS with the
issue that covers it; those are strict xfails, so the suite fails the day one
starts passing and the list must shrink.
"""

from __future__ import annotations

import pytest

from mappings.services import connection_create, token_create
from tests.conftest import ScimClient
from tests.field_cases.runner import CASES_DIR, Replay, load_cases

CASES = load_cases()

# Case id -> why it does not pass yet (the issue that will make it pass).
KNOWN_GAPS: dict[str, str] = {}


def test_the_field_cases_folder_is_there():
    assert CASES_DIR.is_dir(), f"field cases not found at {CASES_DIR}"
    assert len(CASES) >= 50


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c["id"], marks=[pytest.mark.xfail(reason=KNOWN_GAPS[c["id"]], strict=True)]
                     if c["id"] in KNOWN_GAPS else [])
        for c in CASES
    ],
)
def test_field_case(case, live_server):
    connection = connection_create(name=f"field case {case['id']}", preset="generic")
    _, token = token_create(connection=connection, label="field cases")
    client = ScimClient(live_server.url + "/scim/v2", token)
    Replay(case, client, connection, token).run()
