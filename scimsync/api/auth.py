"""API-key authentication for /api/: `Authorization: Api-Key <key>`.

The key acts as its owner: the owner's Django model permissions apply
(permissions.AdminPermissions) and the key's scope can only narrow them
(permissions.ApiKeyScope). SCIM bearer tokens are refused here with a message
that says so; API keys are refused on /scim/ by its own authentication, which
only knows SCIM tokens.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from scimsync.api.services import api_key_authenticate

KEYWORD = "Api-Key"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer":
            raise exceptions.AuthenticationFailed(
                "Bearer tokens are SCIM tokens and do not work on /api/; send Authorization: Api-Key <key>."
            )
        if scheme.lower() != KEYWORD.lower():
            return None  # no key: session authentication may still apply
        key = api_key_authenticate(credentials.strip())
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is not valid, expired or revoked.")
        if not key.owner.is_active:
            raise exceptions.AuthenticationFailed("The owner of this API key is deactivated.")
        return key.owner, key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return f'{KEYWORD} realm="scimsync"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey", "in": "header", "name": "Authorization",
            "description": "`Api-Key <key>`; create a key with `manage.py create_api_key` or in the admin.",
        }
