"""OpenAPI generation: every operation documents the error body it may answer with.

Kept apart from conventions.py: drf-spectacular imports rest_framework.generics,
which imports the filter backends named in the settings.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiParameter

from scimsync.api.errors import ErrorSerializer

# Every operation may answer these; documenting them lets clients (and the
# schema tests) check error bodies like any other response.
ERROR_STATUSES = {
    "400": "The request is not valid (body, filter or ordering parameter).",
    "401": "No credentials, or an API key that is not valid.",
    "403": "Not allowed: not staff, a model permission missing, or a read-only key writing.",
    "404": "No such resource (or page).",
}

IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match", str, OpenApiParameter.HEADER,
    description="The ETag of the copy you hold: 304 without a body when it is still current.",
)
IF_MATCH = OpenApiParameter(
    "If-Match", str, OpenApiParameter.HEADER,
    description="The ETag you read: the write happens only if the resource has not changed since (else 412).",
)
ETAG = OpenApiParameter(
    "ETag", str, OpenApiParameter.HEADER, response=[200],
    description="A digest of this representation; send it back in If-None-Match or If-Match.",
)


class AutoSchema(SpectacularAutoSchema):
    """Adds the error bodies, and the ETag headers of views that declare them:
    `etag = True` (GET answers an ETag, honours If-None-Match), `if_match = ("PUT",)`."""

    def _uses_etag(self) -> bool:
        return self.method == "GET" and getattr(self.view, "etag", False)

    def _uses_if_match(self) -> bool:
        return self.method in getattr(self.view, "if_match", ())

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self._uses_etag():
            parameters += [IF_NONE_MATCH, ETAG]
        if self._uses_if_match():
            parameters += [IF_MATCH, ETAG]
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status_code, description in ERROR_STATUSES.items():
            if status_code not in responses:
                responses[status_code] = self._get_response_for_code(ErrorSerializer, status_code)
                responses[status_code]["description"] = description
        if self._uses_etag():
            responses["304"] = {"description": "Not modified: the ETag in If-None-Match is current."}
        if self._uses_if_match():
            responses["412"] = self._get_response_for_code(ErrorSerializer, "412")
            responses["412"]["description"] = "If-Match does not match the current ETag."
        return responses
