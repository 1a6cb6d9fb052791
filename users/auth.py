"""Password sign-in for local accounts only.

Provisioned users belong to an IdP and sign in through it; letting them use a
password here would bypass the IdP's deactivation. Local admins and break-glass
accounts (no connection) are the only ones this backend accepts.
"""

from django.contrib.auth.backends import ModelBackend


class LocalAccountBackend(ModelBackend):
    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and user.connection_id is None
