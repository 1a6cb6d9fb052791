"""Local accounts in the admin: only a superuser grants rights (brief: "permissions on admin actions").

dave may edit users (the help desk): profiles of provisioned users, a local
account's name. He must not be able to make himself, or anyone, superuser or
staff, hand out permissions, or set another account's password.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from tests.conftest import logged_in
from users.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def dave(db):
    dave = User.objects.create_user("dave", "dave-password-123", is_staff=True)
    dave.user_permissions.set(Permission.objects.filter(codename__in=["view_user", "change_user"]))
    return dave



def _post_change(client, user: User, **changes):
    page = client.get(f"/admin/users/user/{user.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not False}  # unchecked boxes are not posted
    return client.post(f"/admin/users/user/{user.pk}/change/", data)


def test_a_user_editor_cannot_make_himself_superuser(dave):
    response = _post_change(logged_in(dave), dave, is_superuser="on",
                            user_permissions=[p.pk for p in Permission.objects.all()])
    assert response.status_code == 302, response.content[:2000]
    dave.refresh_from_db()
    assert not dave.is_superuser
    assert set(dave.user_permissions.values_list("codename", flat=True)) == {"view_user", "change_user"}


def test_a_user_editor_cannot_set_another_accounts_password(dave, alice):
    client = logged_in(dave)
    url = f"/admin/users/user/{alice.pk}/password/"
    assert client.get(url).status_code == 403
    client.post(url, {"password1": "taken-over-123!", "password2": "taken-over-123!"})
    alice.refresh_from_db()
    assert alice.check_password("alice-password-123")


def test_a_superuser_still_grants_rights(alice, dave):
    response = _post_change(logged_in(alice), dave, is_superuser="on")
    assert response.status_code == 302
    dave.refresh_from_db()
    assert dave.is_superuser
