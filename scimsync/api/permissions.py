"""Who may call what: the admin site's rules, applied to sessions and API keys alike."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from scimsync.api.models import ApiKey


class AdminPermissions(BasePermission):
    """An active staff account holding the Django model permissions the view names.

    Like the admin site: staff status to get in, then model permissions per
    operation. Views list them per HTTP method in `required_perms`; a method a
    view does not list is refused, so an endpoint that forgets them fails closed.
    """

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        if not hasattr(view, request.method.lower()):
            return True  # the view does not have this method: let DRF answer 405, not a misleading 403
        required = getattr(view, "required_perms", {})
        if request.method == "OPTIONS":
            # Describes the endpoint: open to whoever may call any of its methods (a write-only
            # endpoint has no GET whose permission could stand in).
            return any(user.has_perms(perms) for perms in required.values())
        perms = required.get("GET" if request.method == "HEAD" else request.method)
        return perms is not None and user.has_perms(perms)


class ApiKeyScope(BasePermission):
    """A read-only key may only read, whatever its owner may do."""

    message = "This API key is read-only."

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if isinstance(key, ApiKey) and not key.allows_writes:
            return request.method in SAFE_METHODS
        return True
