"""Provisioned groups are read-only in the admin: they are their IdP's (DESIGN.md, one-way sync).

No mapping makes a group or its members the product's, so an edit in the admin would be undone
at the IdP's next push without a flag, and it skipped the version bumps (RFC 7644 §3.14 ETags)
and member checks of users.services.
"""

import pytest

from tests.conftest import logged_in
from users.models import Group
from users.services import group_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def sales(connection):
    return group_create(connection=connection, display_name="Sales", external_id="", member_ids=[])


def test_a_superuser_sees_a_group_but_cannot_change_add_or_delete_one(alice, sales):
    admin = logged_in(alice)
    page = admin.get(f"/admin/users/group/{sales.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Sales" in body and 'name="display_name"' not in body and 'name="_save"' not in body
    assert admin.post(f"/admin/users/group/{sales.pk}/change/", {"display_name": "Renamed"}).status_code == 403
    assert admin.get("/admin/users/group/add/").status_code == 403
    assert admin.post(f"/admin/users/group/{sales.pk}/delete/", {"post": "yes"}).status_code == 403
    sales.refresh_from_db()
    assert (sales.display_name, sales.version) == ("Sales", 1)
    assert Group.objects.filter(pk=sales.pk).exists()


def test_a_provisioned_user_is_not_deleted_in_the_admin_but_a_local_account_is(alice, connection, sales):
    """Found by a break-it helper: the admin's delete skipped user_deprovision (no journal entry,
    the group's ETag unmoved, RFC 7644 §3.14) and left the IdP pushing to a user that was gone."""
    from scimsync.sync import services
    from users.models import GroupMembership, User
    from users.services import group_replace

    ada = services.user_provision(connection=connection, received={"user_name": "ada"}, extras={},
                                  actor=services.Actor("SCIM POST"))
    group_replace(group=sales, display_name="Sales", external_id="", member_ids=[str(ada.scim_id)])
    local = User.objects.create_user("carol", "carol-password-123")
    admin = logged_in(alice)
    assert admin.post(f"/admin/users/user/{ada.pk}/delete/", {"post": "yes"}).status_code == 403
    admin.post("/admin/users/user/", {"action": "delete_selected", "_selected_action": [ada.pk, local.pk],
                                      "post": "yes"})
    assert User.objects.filter(pk=ada.pk).exists() and GroupMembership.objects.filter(user=ada).exists()
    assert User.objects.filter(pk=local.pk).exists()  # refused as a whole: the selection held ada
    admin.post("/admin/users/user/", {"action": "delete_selected", "_selected_action": [local.pk], "post": "yes"})
    assert not User.objects.filter(pk=local.pk).exists()


def test_a_groups_page_costs_the_same_queries_for_1_and_30_members(alice, connection, sales):
    """The member rows link their users through one join, not a query each (STYLE.md habit 10)."""
    from scimsync.sync import services
    from users.services import group_replace

    def members(n):
        users = [services.user_provision(connection=connection, received={"user_name": f"m{len(ids) + k}"},
                                         extras={}, actor=services.Actor("SCIM POST")) for k in range(n)]
        ids.extend(str(u.scim_id) for u in users)
        group_replace(group=sales, display_name="Sales", external_id="", member_ids=ids)

    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    ids: list[str] = []
    admin = logged_in(alice)
    counts = []
    for n in (1, 29):
        members(n)
        with CaptureQueriesContext(db) as captured:
            assert admin.get(f"/admin/users/group/{sales.pk}/change/").status_code == 200
        counts.append(len(captured))
    assert counts[0] == counts[1], counts
