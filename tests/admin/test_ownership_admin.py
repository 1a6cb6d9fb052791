"""The ownership view in the admin (issue 6) through Django's test client: report, mappings
editor with impact preview, lost-edit restore, dashboard, permissions and query counts."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.contrib.auth.models import Permission

from mappings.models import AttributeMapping, MappingChange
from mappings.services import connection_create
from scimsync.models import AttributeState, JournalChange, ScimRequestLog
from scimsync.sync import services
from tests.conftest import logged_in
from users.models import User

pytestmark = pytest.mark.django_db


def _provision(connection, user_name, **received):
    return services.user_provision(
        connection=connection, received={"user_name": user_name, **received}, extras={},
        actor=services.Actor("SCIM POST"),
    )


def _edit(user, attribute, value, by="alice"):
    services.user_local_edit(user=user, attribute=attribute, value=value, actor=services.Actor(by))


@pytest.fixture
def admin_client(alice):
    return logged_in(alice)


@pytest.fixture
def bob(db):
    """bob: a viewer. He sees users, flags and mappings but changes nothing."""
    bob = User.objects.create_user("bob", "bob-password-123", is_staff=True)
    bob.user_permissions.set(Permission.objects.filter(codename__in=[
        "view_user", "view_connection", "view_attributemapping", "view_atriskattribute", "view_lostedit",
    ]))
    return bob


@pytest.fixture
def charlie(db):
    """charlie: staff without any permission."""
    return User.objects.create_user("charlie", "charlie-password-123", is_staff=True)



def test_at_risk_report_lists_every_at_risk_attribute_and_exports_csv(admin_client, connection):
    alex = _provision(connection, "alex", title="Analyst", department="Sales")
    sam = _provision(connection, "sam", title="Engineer")
    _edit(alex, "title", "Lead")
    _edit(alex, "department", "Ops")
    _edit(sam, "title", "Staff Engineer")

    response = admin_client.get("/admin/scimsync/atriskattribute/")
    page = response.content.decode()
    for text in ("Lead", "Ops", "Staff Engineer", "Analyst", "Sales", "Engineer"):
        assert text in page
    # Grouped by connection and attribute (issue 6), with the next sync of each group.
    groups = [(g.connection.pk, g.attribute, g.users) for g in response.context_data["groups"]]
    assert groups == [(connection.pk, "department", 1), (connection.pk, "title", 2)]
    assert f'data-connection="{connection.pk}" data-attribute="title"' in page
    filtered = admin_client.get("/admin/scimsync/atriskattribute/", {"attribute": "title"})
    assert [(g.attribute, g.users) for g in filtered.context_data["groups"]] == [("title", 2)]
    ids = list(AttributeState.objects.filter(at_risk=True).values_list("pk", flat=True))
    response = admin_client.post("/admin/scimsync/atriskattribute/",
                                 {"action": "export_csv", "_selected_action": ids})
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:5] == ["connection", "attribute", "user", "current value", "IdP value"]
    assert sorted((r[1], r[2], r[3], r[4]) for r in rows[1:]) == [
        ("department", "alex", "Ops", "Sales"), ("title", "alex", "Lead", "Analyst"),
        ("title", "sam", "Staff Engineer", "Engineer"),
    ]

    _edit(sam, "title", "@SUM(1+1)")  # CSV injection: shown as text, never run as a formula
    response = admin_client.post("/admin/scimsync/atriskattribute/",
                                 {"action": "export_csv", "_selected_action": ids})
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert ("sam", "'@SUM(1+1)") in [(r[2], r[3]) for r in rows[1:]]


def test_bulk_revert_from_the_report(admin_client, connection):
    alex = _provision(connection, "alex", title="Analyst")
    _edit(alex, "title", "Lead")
    state = AttributeState.objects.get(user=alex, attribute="title")
    admin_client.post("/admin/scimsync/atriskattribute/", {"action": "revert_selected", "_selected_action": [state.pk]})
    alex.refresh_from_db()
    assert alex.title == "Analyst" and not AttributeState.objects.filter(at_risk=True).exists()


def test_mapping_editor_previews_the_impact_then_saves_on_confirm(admin_client, connection, alice):
    services.mapping_update(connection=connection, attribute="phone_mobile", state="unmapped", actor=services.Actor("a"))
    users = [_provision(connection, f"u{i}", phone_mobile=f"+1 555 000{i}") for i in range(3)]
    for user in users[:2]:
        _edit(user, "phone_mobile", "+1 555 9999")
    url = f"/admin/mappings/connection/{connection.pk}/mappings/"
    preview = admin_client.post(url, {"state-phone_mobile": "mapped", "apply-phone_mobile": "always", "preview": "1"})
    page = preview.content.decode()
    # users[2] was never seeded either (unmapped on create), so all three differ from the IdP.
    assert "mapping phone_mobile puts 3 users&#x27; local values at risk" in page
    assert AttributeMapping.objects.get(connection=connection, attribute="phone_mobile").state == "unmapped"
    assert not AttributeState.objects.filter(at_risk=True).exists()

    admin_client.post(url, {"state-phone_mobile": "mapped", "apply-phone_mobile": "always", "confirm": "1"})
    assert AttributeMapping.objects.get(connection=connection, attribute="phone_mobile").state == "mapped"
    assert AttributeState.objects.filter(at_risk=True, attribute="phone_mobile").count() == 3
    audit = MappingChange.objects.filter(attribute="phone_mobile").first()  # the newest
    assert (audit.before, audit.after, audit.actor, audit.users_now_at_risk) == (
        "unmapped/always", "mapped/always", alice, 3)


def test_lost_edit_restore_brings_the_value_back_at_risk(admin_client, connection):
    alex = _provision(connection, "alex", title="Analyst")
    _edit(alex, "title", "Lead")
    services.user_sync(user=alex, actor=services.Actor("sync"))
    lost = JournalChange.objects.get(lost_edit=True)
    assert "Lead" in admin_client.get("/admin/scimsync/lostedit/").content.decode()
    admin_client.post("/admin/scimsync/lostedit/", {"action": "restore", "_selected_action": [lost.pk]})
    alex.refresh_from_db()
    assert alex.title == "Lead"
    assert AttributeState.objects.get(user=alex, attribute="title").at_risk
    lost.refresh_from_db()
    assert lost.restored_at is not None


def test_dashboard_shows_risk_lost_edits_failures_and_silent_connections(admin_client, connection):
    alex = _provision(connection, "alex", title="Analyst")
    _edit(alex, "title", "Lead")
    services.user_sync(user=alex, actor=services.Actor("sync"))
    _edit(alex, "title", "Lead again")
    connection_create(name="Quiet tenant", preset="okta")
    ScimRequestLog.objects.create(connection=connection, method="PATCH", path="/scim/v2/Users/x", status=400)
    # Not failed pushes: an IdP's GET of an id that is gone, an unsupported /Me; but a 500 is.
    ScimRequestLog.objects.create(connection=connection, method="GET", path="/scim/v2/Users/y", status=404)
    ScimRequestLog.objects.create(connection=connection, method="GET", path="/scim/v2/Me", status=501)
    ScimRequestLog.objects.create(connection=connection, method="GET", path="/scim/v2/Users", status=500)
    page = admin_client.get("/admin/").content.decode()
    assert "Lost edits this week: <strong>1</strong>" in page
    assert "Failed pushes (24 h): <strong>2</strong>" in page  # the PATCH 400 and the 500
    assert "Silent connections: <strong>1</strong>" in page  # the quiet one never pushed; the other just did
    assert 'data-connection="Quiet tenant"' in page


def test_viewer_sees_flags_but_cannot_change_mappings_or_revert(bob, connection):
    alex = _provision(connection, "alex", title="Analyst")
    _edit(alex, "title", "Lead")
    client = logged_in(bob)
    assert "⚠ At risk" in client.get(f"/admin/users/user/{alex.pk}/change/").content.decode()
    url = f"/admin/mappings/connection/{connection.pk}/mappings/"
    assert "You can view these mappings but not change them." in client.get(url).content.decode()
    assert client.post(url, {"state-title": "unmapped", "apply-title": "always", "confirm": "1"}).status_code == 403
    assert client.post(f"/admin/users/user/{alex.pk}/revert/", {"attribute": "title"}).status_code == 403
    alex.refresh_from_db()
    assert alex.title == "Lead"
    assert AttributeMapping.objects.get(connection=connection, attribute="title").state == "mapped"


def test_someone_with_no_access_sees_nothing(charlie, connection):
    alex = _provision(connection, "alex", title="Analyst")
    client = logged_in(charlie)
    assert client.get(f"/admin/users/user/{alex.pk}/change/").status_code == 403
    assert client.get("/admin/scimsync/atriskattribute/").status_code == 403
    assert client.get(f"/admin/mappings/connection/{connection.pk}/mappings/").status_code == 403


@pytest.mark.parametrize(
    "url",
    ["/admin/users/user/", "/admin/scimsync/atriskattribute/", "/admin/scimsync/journalentry/",
     "/admin/scimsync/lostedit/"],
)
def test_list_pages_cost_the_same_queries_for_1_and_50_rows(admin_client, connection, url, django_assert_max_num_queries):
    """STYLE.md habit 10: the query count of a list page does not grow with its size."""
    def populate(n):
        for i in range(n):
            user = _provision(connection, f"{url.split('/')[3]}-{n}-{i}", title="Analyst", manager=None)
            _edit(user, "title", "Lead")
            services.user_sync(user=user, actor=services.Actor("sync"))
            _edit(user, "title", "Lead again")

    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    populate(1)
    with CaptureQueriesContext(db) as one:
        assert admin_client.get(url).status_code == 200
    populate(49)
    with CaptureQueriesContext(db) as fifty:
        assert admin_client.get(url).status_code == 200
    assert len(fifty) == len(one), [q["sql"] for q in fifty.captured_queries]


def test_changing_a_connections_preset_in_the_admin_switches_its_mappings(admin_client, connection):
    """A preset is where mappings start (issue 2): picking another one on the connection page
    applies its mappings through the mapping service (audited, flags moved), not just the label."""
    alex = _provision(connection, "alex", nick_name="Al")
    _edit(alex, "nick_name", "Alexander")  # generic maps nick_name; entra does not
    assert AttributeState.objects.get(user=alex, attribute="nick_name").at_risk
    page = admin_client.get(f"/admin/mappings/connection/{connection.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update(preset="entra", **{k: v for k, v in _inline_management(page).items()})
    response = admin_client.post(f"/admin/mappings/connection/{connection.pk}/change/", data, follow=True)
    assert response.status_code == 200
    connection.refresh_from_db()
    assert connection.preset == "entra"
    assert AttributeMapping.objects.get(connection=connection, attribute="nick_name").state == "unmapped"
    assert MappingChange.objects.filter(connection=connection, attribute="nick_name").exists()
    assert not AttributeState.objects.get(user=alex, attribute="nick_name").at_risk
    assert "Switched Entra test tenant to the Microsoft Entra ID preset" in response.content.decode()


def _inline_management(page) -> dict:
    """The management-form fields of the page's inlines (read-only here, but posted all the same)."""
    data = {}
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data.update({f"{management.prefix}-{k}": v for k, v in management.initial.items()})
    return data


def test_a_custom_attribute_is_edited_on_the_user_page_and_flagged_like_the_others(admin_client, connection):
    """Issue 6: custom attributes can be added and are attributes like the rest: the user page
    edits them, and a local edit of a mapped one (generic maps custom attributes) is at risk."""
    from mappings.services import custom_attribute_create

    custom_attribute_create(name="badgeNumber")
    alex = _provision(connection, "alex", title="Analyst", **{"custom:badgeNumber": "B-1"})
    url = f"/admin/users/user/{alex.pk}/change/"
    page = admin_client.get(url)
    form = page.context["adminform"].form
    assert form["custom__badgeNumber"].value() == "B-1"
    assert "IdP-owned" in form.fields["custom__badgeNumber"].help_text
    data = {name: form[name].value() for name in form.fields if form[name].value() not in (None, False)}
    data["custom__badgeNumber"] = "B-2"
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    alex.refresh_from_db()
    assert alex.custom_attributes == {"badgeNumber": "B-2"}
    state = AttributeState.objects.get(user=alex, attribute="custom:badgeNumber")
    assert state.at_risk and state.idp_value == "B-1" and state.local_edit_by_label == "alice"
    listed = admin_client.get("/admin/users/user/", {"at_risk_attribute": "custom:badgeNumber"})
    assert "alex" in listed.content.decode()


def _form_data(form) -> dict:
    """What the browser would post back unchanged, MultiWidget fields as NAME_0, NAME_1..."""
    data = {}
    for name in form.fields:
        value = form[name].value()
        widget = form.fields[name].widget
        if hasattr(widget, "widgets"):
            parts = value if isinstance(value, list) else widget.decompress(value)
            data.update({f"{name}_{i}": part for i, part in enumerate(parts)})
        elif value not in (None, False):
            data[name] = value
    return data


def test_an_address_is_edited_as_its_parts_and_flagged_like_the_others(admin_client, connection):
    """An address (addresses[type eq "work"], RFC 7643 §4.1.2) is edited part by part on the
    user page, not as raw JSON: empty shows empty inputs (not "null"), a typed street and city
    are stored as the address object, and the edit of the mapped attribute is at risk."""
    alex = _provision(connection, "alex", address_work={"streetAddress": "1 Main St", "locality": "Springfield"})
    url = f"/admin/users/user/{alex.pk}/change/"
    page = admin_client.get(url)
    html = page.content.decode()
    assert 'name="address_work_1" value="1 Main St"' in html and 'name="address_home_1"' in html
    assert ">null<" not in html

    data = _form_data(page.context["adminform"].form)
    data.update({"address_work_1": "2 Elm St", "address_home_2": "Shelbyville"})
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors

    alex.refresh_from_db()
    assert alex.address_work == {"streetAddress": "2 Elm St", "locality": "Springfield"}
    assert alex.address_home == {"locality": "Shelbyville"}
    work = AttributeState.objects.get(user=alex, attribute="address_work")
    assert work.at_risk and work.idp_value == {"streetAddress": "1 Main St", "locality": "Springfield"}

    # Posted back untouched, nothing changes and nothing new is journaled.
    before = JournalChange.objects.count()
    data = _form_data(admin_client.get(url).context["adminform"].form)
    assert admin_client.post(url, data).status_code == 302
    assert JournalChange.objects.count() == before


def test_the_user_page_shows_what_the_idp_sent_outside_the_catalogue(admin_client, scim_connection_user):
    """DESIGN.md, "The attribute catalogue": a value that matches no catalogue attribute (another
    email type, an unknown extension) is kept as sent and "shown to admins as 'received, not in
    the catalogue'"."""
    user = scim_connection_user
    page = admin_client.get(f"/admin/users/user/{user.pk}/change/").content.decode()
    assert "Received, not in the catalogue" in page
    section = page[page.index('class="outside-catalogue"'):].split("</table>")[0]
    assert "emails" in section and "alias@example.com" in section
    assert "urn:example:okta:2.0:User" in section and "badge-7" in section


@pytest.fixture
def scim_connection_user(client, connection):
    from mappings.services import token_create

    _, token = token_create(connection=connection, label="t")
    created = client.post("/scim/v2/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:example:okta:2.0:User"],
        "userName": "alex", "emails": [{"type": "work", "value": "alex@example.com"},
                                       {"type": "alias", "value": "alias@example.com"}],
        "urn:example:okta:2.0:User": {"badge": "badge-7"}},
        content_type="application/scim+json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert created.status_code == 201, created.content
    return User.objects.get(user_name="alex")


def test_the_connection_page_lists_each_mapping_by_its_owner(admin_client, connection):
    """Issue 6, the user page's owner labels on the connection page too: an unmapped attribute
    is Local, whatever apply it kept (apply matters only while mapped)."""
    services.mapping_update(connection=connection, attribute="title", state="unmapped", actor=services.Actor("a"))
    services.mapping_update(connection=connection, attribute="department", state="mapped", apply="on_create",
                            actor=services.Actor("a"))
    page = admin_client.get(f"/admin/mappings/connection/{connection.pk}/change/").content.decode()
    rows = dict(re.findall(r'field-attribute">\s*<p>([^<]+)</p>.*?field-owner">\s*<p>([^<]+)</p>', page, re.S))
    assert (rows["title"], rows["department"], rows["display_name"]) == ("Local", "IdP on create", "IdP-owned")
    assert "Always: every sync overwrites" not in page
