from csp.decorators import csp_update
from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from yiwang.core.views import healthz

api_patterns = [
    path("org/", include("yiwang.org.api_urls")),
    path("workflow/", include("yiwang.workflow.api_urls")),
    path("notify/", include("yiwang.notify.api_urls")),
    path("exchange/", include("yiwang.exchange.api_urls")),
]

urlpatterns = [
    path("", include("yiwang.core.urls")),
    path("org/", include("yiwang.org.urls")),
    path("workflow/", include("yiwang.workflow.urls")),
    path("notify/", include("yiwang.notify.urls")),
    path("exchange/", include("yiwang.exchange.urls")),
    path("api/", include((api_patterns, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file (no inline script);
    # Swagger UI itself still writes inline styles, allowed on this one page only.
    path(
        "api/docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(SpectacularSwaggerSplitView.as_view(url_name="schema")),
        name="swagger-ui",
    ),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", healthz, name="healthz"),
    path("django-admin/", admin.site.urls),
    path("favicon.ico", RedirectView.as_view(url=f"{settings.STATIC_URL}yiwang/favicon.svg")),
]
