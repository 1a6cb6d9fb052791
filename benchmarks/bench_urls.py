"""The application's URLs plus /bench/reference, a bare view returning a small JSON body.

The application's patterns are listed here as they are, not through an include(): a
SCIM request then resolves through the same levels as in production (ROOT_URLCONF =
scimsync.urls), and the error handlers are production's too.
"""

from django.http import JsonResponse
from django.urls import path

from scimsync import urls as production


def reference(request):
    """The yardstick: the full middleware stack (browser middleware included), no database, a small JSON body."""
    return JsonResponse({"status": "ok", "service": "scimsync", "items": [1, 2, 3]})


urlpatterns = [
    path("bench/reference", reference, name="bench-reference"),
    *production.urlpatterns,
]

handler400 = production.handler400
handler500 = production.handler500
