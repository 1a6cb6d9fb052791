"""The application's URLs plus /bench/reference, a bare view returning a small JSON body."""

from django.http import JsonResponse
from django.urls import include, path


def reference(request):
    """The yardstick: the full middleware stack, no database, a small JSON body."""
    return JsonResponse({"status": "ok", "service": "scimsync", "items": [1, 2, 3]})


urlpatterns = [
    path("bench/reference", reference, name="bench-reference"),
    path("", include("scimsync.urls")),
]
