"""OpenAPI generation: every operation documents the error body it may answer with.

Kept apart from conventions.py: drf-spectacular imports rest_framework.generics,
which imports the filter backends named in the settings.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

from scimsync.api.errors import ErrorSerializer

# Every operation may answer these; documenting them lets clients (and the
# schema tests) check error bodies like any other response.
ERROR_STATUSES = {
    "400": "The request is not valid (body, filter or ordering parameter).",
    "401": "No credentials, or an API key that is not valid.",
    "403": "Not allowed: not staff, a model permission missing, or a read-only key writing.",
    "404": "No such resource (or page).",
}


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status_code, description in ERROR_STATUSES.items():
            if status_code not in responses:
                responses[status_code] = self._get_response_for_code(ErrorSerializer, status_code)
                responses[status_code]["description"] = description
        return responses
