"""/api/: the versioned endpoints under v1/, the OpenAPI schema and its documentation page."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from scimsync.api.errors import not_found
from scimsync.api.views import connections, mappings, reports, sync_runs, users

v1 = [
    path("connections/", connections.ConnectionList.as_view()),
    path("connections/<int:pk>/", connections.ConnectionDetail.as_view()),
    path("connections/<int:pk>/cadence/", connections.ConnectionCadence.as_view()),
    path("connections/<int:pk>/preset/", connections.ConnectionPreset.as_view()),
    path("connections/<int:pk>/preset/preview/", connections.ConnectionPresetPreview.as_view()),
    path("connections/<int:pk>/tokens/", connections.ConnectionTokens.as_view()),
    path("connections/<int:pk>/tokens/<int:token_id>/revoke/", connections.ConnectionTokenRevoke.as_view()),
    path("connections/<int:pk>/mappings/", mappings.ConnectionMappings.as_view()),
    path("connections/<int:pk>/mappings/preview/", mappings.MappingPreview.as_view()),
    path("connections/<int:pk>/mappings/<str:attribute>/", mappings.ConnectionMapping.as_view()),
    path("connections/<int:pk>/journal/", reports.ConnectionJournal.as_view()),
    path("attributes/", mappings.AttributeList.as_view()),
    path("users/", users.UserList.as_view()),
    path("users/<int:pk>/", users.UserDetail.as_view()),
    path("users/<int:pk>/attributes/<str:attribute>/", users.UserAttribute.as_view()),
    path("users/<int:pk>/attributes/<str:attribute>/revert/", users.UserAttributeRevert.as_view()),
    path("users/<int:pk>/journal/", users.UserJournal.as_view()),
    path("at-risk/", reports.AtRiskList.as_view()),
    path("at-risk.csv", reports.AtRiskCsv.as_view()),
    path("lost-edits/", reports.LostEditList.as_view()),
    path("lost-edits/<int:pk>/restore/", reports.LostEditRestore.as_view()),
    path("sync-runs/", sync_runs.SyncRunList.as_view()),
    path("sync-runs/<int:pk>/", sync_runs.SyncRunDetail.as_view()),
    path("sync-runs/<int:pk>/retry/", sync_runs.SyncRunRetry.as_view()),
    path("sync-runs/<int:pk>/approve/", sync_runs.SyncRunApprove.as_view()),
]

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    # Anything else under /api/ gets the API's error body, not an HTML page.
    re_path(r"^", not_found),
]
