"""Django's last-resort error pages (handler400, handler500), in each surface's own error body.

They answer failures that happen before a view runs, in middleware: a Host header
not in ALLOWED_HOSTS is the common one. A SCIM client then still gets an RFC 7644
§3.12 body and an API script the API's {"status", "code", "detail"}, not an HTML page.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views import defaults

from scimsync.scim.errors import ScimError

from scimsync.middleware import is_scim

API_PREFIX = "/api/"


def _json_error(request, status: int, code: str, detail: str):
    if is_scim(request):
        from scimsync.scim.views import error_response

        return error_response(ScimError(status, detail))
    if request.path_info.startswith(API_PREFIX):
        return JsonResponse({"status": status, "code": code, "detail": detail}, status=status)
    return None


def bad_request(request, exception=None):
    return _json_error(request, 400, "bad_request", "Bad request: the Host header or the request itself "
                       "was refused") or defaults.bad_request(request, exception)


def server_error(request):
    return _json_error(request, 500, "error", "The server could not complete the request") \
        or defaults.server_error(request)
