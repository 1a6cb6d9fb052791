"""Django's browser middleware, minus the SCIM surface.

Sessions, the logged-in user, messages and CSRF cookies serve the admin and the
API's browser session. An IdP's request carries a bearer token and none of
those; running them for it only costs time on the path every IdP calls most
(SCIM views are csrf_exempt and never read request.user or request.session).
Each class here is Django's own, run for every path but /scim/.

Subclasses, so Django's admin checks (admin.E408-E410), which look for the
middleware by class, still find them.
"""

from __future__ import annotations

from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.middleware import csrf

SCIM_PREFIX = "/scim/"


def is_scim(request) -> bool:
    """Whether a request is for the SCIM surface: by its path within the application, as URL
    routing sees it (a deployment under SCRIPT_NAME has the prefix in request.path only)."""
    return request.path_info.startswith(SCIM_PREFIX)


class _NotForScim:
    """Hand a SCIM request straight to the next middleware."""

    def __call__(self, request):
        if is_scim(request):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(_NotForScim, sessions_middleware.SessionMiddleware):
    pass


class CsrfViewMiddleware(_NotForScim, csrf.CsrfViewMiddleware):
    def process_view(self, request, callback, callback_args, callback_kwargs):
        # Django calls process_view apart from __call__; a SCIM view is csrf_exempt anyway.
        if is_scim(request):
            return None
        return super().process_view(request, callback, callback_args, callback_kwargs)


class AuthenticationMiddleware(_NotForScim, auth_middleware.AuthenticationMiddleware):
    pass


class MessageMiddleware(_NotForScim, messages_middleware.MessageMiddleware):
    pass
