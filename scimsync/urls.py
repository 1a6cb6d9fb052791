from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("scim/v2/", include("scimsync.scim.urls", namespace="scim")),
    path("admin/", admin.site.urls),
    path("api/", include("scimsync.api.urls")),
]

handler400 = "scimsync.error_views.bad_request"
handler500 = "scimsync.error_views.server_error"
