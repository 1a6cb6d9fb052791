"""/api/: the versioned endpoints under v1/, the OpenAPI schema and its documentation page."""

from django.urls import include, path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from scimsync.api.errors import not_found
from scimsync.api.views import connections, mappings, reports, root, sync_runs, users



class IdConverter:
    """A row id: at most 18 digits, so it always fits the 64-bit id columns. Django's `int` takes
    any length, and a 30-digit id then overflowed SQLite's driver (a 500) instead of a 404."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

v1 = [
    path("", root.ApiRoot.as_view()),
    path("connections/", connections.ConnectionList.as_view()),
    path("connections/<id:pk>/", connections.ConnectionDetail.as_view()),
    path("connections/<id:pk>/cadence/", connections.ConnectionCadence.as_view()),
    path("connections/<id:pk>/preset/", connections.ConnectionPreset.as_view()),
    path("connections/<id:pk>/preset/preview/", connections.ConnectionPresetPreview.as_view()),
    path("connections/<id:pk>/tokens/", connections.ConnectionTokens.as_view()),
    path("connections/<id:pk>/tokens/<id:token_id>/revoke/", connections.ConnectionTokenRevoke.as_view()),
    path("connections/<id:pk>/mappings/", mappings.ConnectionMappings.as_view()),
    path("connections/<id:pk>/mappings/preview/", mappings.MappingPreview.as_view()),
    path("connections/<id:pk>/mappings/<str:attribute>/", mappings.ConnectionMapping.as_view()),
    path("connections/<id:pk>/journal/", reports.ConnectionJournal.as_view()),
    path("connections/<id:pk>/requests/", reports.ConnectionRequestLog.as_view()),
    path("attributes/", mappings.AttributeList.as_view()),
    path("users/", users.UserList.as_view()),
    path("users/<id:pk>/", users.UserDetail.as_view()),
    path("users/<id:pk>/attributes/<str:attribute>/", users.UserAttribute.as_view()),
    path("users/<id:pk>/attributes/<str:attribute>/revert/", users.UserAttributeRevert.as_view()),
    path("users/<id:pk>/journal/", users.UserJournal.as_view()),
    path("at-risk/", reports.AtRiskList.as_view()),
    path("at-risk.csv", reports.AtRiskCsv.as_view()),
    path("lost-edits/", reports.LostEditList.as_view()),
    path("lost-edits/<id:pk>/restore/", reports.LostEditRestore.as_view()),
    path("sync-runs/", sync_runs.SyncRunList.as_view()),
    path("sync-runs/<id:pk>/", sync_runs.SyncRunDetail.as_view()),
    path("sync-runs/<id:pk>/dry-run/", sync_runs.SyncRunDryRun.as_view()),
    path("sync-runs/<id:pk>/retry/", sync_runs.SyncRunRetry.as_view()),
    path("sync-runs/<id:pk>/approve/", sync_runs.SyncRunApprove.as_view()),
]

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    # Anything else under /api/ gets the API's error body, not an HTML page.
    re_path(r"^", not_found),
]
