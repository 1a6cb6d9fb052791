"""GET /api/v1/: where things are, so a script can start from one URL."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

# Collections and reports; per-item routes hang off them (see the OpenAPI schema).
ENTRY_POINTS = {
    "connections": "connections/",
    "attributes": "attributes/",
    "users": "users/",
    "at_risk": "at-risk/",
    "at_risk_csv": "at-risk.csv",
    "lost_edits": "lost-edits/",
    "sync_runs": "sync-runs/",
}


@extend_schema(tags=["root"], responses={200: OpenApiTypes.OBJECT})
class ApiRoot(APIView):
    """The API's entry points as absolute URLs, with the schema and its documentation."""

    # Whoever may see the connections may see where the rest is; each endpoint checks its own rights.
    required_perms = {"GET": ("mappings.view_connection",)}

    def get(self, request):
        base = request.build_absolute_uri("/api/v1/")
        links = {name: base + path for name, path in ENTRY_POINTS.items()}
        links["schema"] = request.build_absolute_uri("/api/schema/")
        links["docs"] = request.build_absolute_uri("/api/docs/")
        return Response(links)
