"""The admin index: every model entry has a name a reader can tell from the others."""

from __future__ import annotations

import pytest

from tests.conftest import logged_in

pytestmark = pytest.mark.django_db


def test_the_admin_index_tells_the_two_kinds_of_group_apart(alice):
    """django.contrib.auth's permission groups and users.Group (groups an IdP provisions) were
    both listed as "Groups"; each entry of the index now has a name of its own."""
    response = logged_in(alice).get("/admin/")
    assert response.status_code == 200
    entries = {(app["app_label"], m["object_name"]): m["name"]
               for app in response.context["app_list"] for m in app["models"]}
    assert entries[("auth", "Group")] == "Groups"
    assert entries[("users", "Group")] == "Provisioned groups"
    names = list(entries.values())
    assert len(names) == len(set(names)), names
