"""Schemathesis against the OpenAPI schema the API generates (issue 5): no 5xx, and every
response (errors included) matches what the schema documents for it.

Schemathesis reads /api/schema/ from the WSGI application and drives every operation in
process with generated requests: valid ones, boundary ones (the coverage phase) and invalid
ones. Each generated request is sent twice: as generated (its ids rarely exist, so this mostly
explores 404s and 400s) and with the path's ids replaced by those of seeded rows, so that real
users, runs and lost edits are read and written too. The example budget keeps the whole run
well under two minutes on a shared machine.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mappings.services import token_create
from scimsync.models import JournalEntry, ScimRequestLog, SyncRun
from scimsync.sync import services
from tests.api.conftest import key_for, provision

CONFIG = schemathesis.Config.from_str("""
seed = 5
[generation]
max-examples = 8
[phases.coverage]
enabled = true
[phases.stateful]
enabled = false
""")

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), config=CONFIG)

# What the issue asks for (no 5xx; responses match their schema: status, content type, headers,
# body), and invalid input refused with a 4xx. Not positive_data_acceptance: a schema-valid id
# (any integer) seldom names a row, so a 404 there is the right answer, not a failure.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]


TALLY = {"operations": set(), "requests": 0, "statuses": {}}


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    """One line at the end: how much Schemathesis sent, by status (the budget is the point of this test)."""
    yield
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(TALLY["statuses"].items()))
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None and TALLY["requests"]:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nschemathesis: {len(TALLY['operations'])} operations, {TALLY['requests']} "
                                f"requests checked ({statuses})")


def call(case, auth):
    response = case.call_and_validate(headers=auth, checks=CHECKS)
    TALLY["operations"].add(case.operation.label)
    TALLY["requests"] += 1
    TALLY["statuses"][response.status_code] = TALLY["statuses"].get(response.status_code, 0) + 1


@pytest.fixture
def in_test_transaction():
    """Requests run on the test's connection, inside its transaction, as Django's test client does:
    without this, request_finished would close that connection mid-test."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(connection, alice):
    """One row of everything a path can name: a user at risk with a lost edit, a token,
    a failed and a held run, a logged SCIM request."""
    ada = provision(connection, "ada@example.com", title="Analyst", department="Sales")
    services.user_local_edit(user=ada, attribute="title", value="Lead", actor=services.Actor("bob"))
    services.user_sync(user=ada, actor=services.Actor("sync"))
    services.user_local_edit(user=ada, attribute="department", value="Ops", actor=services.Actor("bob"))
    token, _ = token_create(connection=connection, label="seed")
    SyncRun.objects.create(connection=connection, state=SyncRun.State.FAILED, error="boom")
    held = SyncRun.objects.create(connection=connection, state=SyncRun.State.HELD, user_ids=[ada.pk])
    ScimRequestLog.objects.create(connection=connection, method="PATCH", path=f"/scim/v2/Users/{ada.scim_id}",
                                  status=200, decoded=[{"attribute": "title", "value": "Analyst",
                                                        "outcome": "applied"}])
    lost = JournalEntry.objects.get(user=ada, kind=JournalEntry.Kind.SYNC).changes.get()
    return {
        "connections": connection.pk, "users": ada.pk, "sync-runs": held.pk, "lost-edits": lost.pk,
        "token_id": token.pk, "key": key_for(alice),
    }


def with_seeded_ids(case, ids):
    """The same request aimed at seeded rows: `pk` is the row of the path's first segment."""
    if not case.path_parameters:
        return None
    resource = case.path.strip("/").split("/")[0]
    values = {"pk": ids.get(resource), "token_id": ids["token_id"], "attribute": "title"}
    replaced = {name: values[name] for name in case.path_parameters if values.get(name) is not None}
    if not replaced:
        return None
    # Without the generation metadata: the checks that judge whether the request *should* have
    # been refused (it may have been an invalid id on purpose) do not apply to the aimed copy.
    return case.operation.Case(
        path_parameters={**case.path_parameters, **replaced}, query=case.query, headers=dict(case.headers or {}),
        body=case.body, media_type=case.media_type,
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("in_test_transaction")
@schema.parametrize()
# The seeded rows are shared by the examples of one operation on purpose: writes pile up on them
# (an edit, a revert, an approval) as they would on a live system, and the responses must stay valid.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
def test_every_operation_matches_the_schema(case, seeded):
    auth = {"Authorization": f"Api-Key {seeded['key']}"}
    call(case, auth)
    aimed = with_seeded_ids(case, seeded)
    if aimed is not None:
        call(aimed, auth)


def test_the_schema_documents_every_endpoint_and_the_docs_page_serves_it(client):
    """Issue 5: "OpenAPI 3 generated from the code, served at /api/schema/ with a browsable
    documentation page". Every route of /api/v1/ is in the schema, so none escapes Schemathesis."""
    from scimsync.api.urls import v1

    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert document["openapi"].startswith("3.")
    routes = {"/api/v1/" + str(p.pattern).replace("<id:", "{").replace("<str:", "{").replace(">", "}")
              for p in v1}
    documented = {path.replace("{id}", "{pk}") for path in document["paths"]}
    assert routes == documented
    assert document["components"]["securitySchemes"]["apiKey"]["name"] == "Authorization"

    page = client.get("/api/docs/")
    assert page.status_code == 200 and b"/api/schema/" in page.content
    assert b"cdn." not in page.content  # served from drf-spectacular-sidecar: works offline
