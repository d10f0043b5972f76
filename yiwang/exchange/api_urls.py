"""``/api/exchange/``: the gateway (``gateway/``) and the management API of each area."""

from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from .api import access as access_api
from .api import catalog as catalog_api
from .api import (
    converters,  # noqa: F401 - registers the "rescode" path converter
    gateway,
)
from .api import disputes as disputes_api
from .api import evidence as evidence_api
from .api import matching as matching_api
from .api import registries as registries_api
from .api import statistics as statistics_api
from .api import subscriptions as subscriptions_api

app_name = "exchange"

router = SimpleRouter()
# AREA routers: router.register(...) lines here
router.register("imports", registries_api.ImportRunViewSet, basename="import")
router.register("entries", catalog_api.EntryViewSet, basename="entry")
router.register("requests", access_api.AccessRequestViewSet, basename="request")
router.register("grants", access_api.GrantViewSet, basename="grant")
router.register("disputes", disputes_api.DisputeViewSet, basename="dispute")
router.register("subscriptions", subscriptions_api.SubscriptionViewSet, basename="subscription")
urlpatterns = [
    # AREA gateway: gateway routes here
    path("gateway/<rescode:code>/changes/", subscriptions_api.ChangesView.as_view(), name="gateway_changes"),
    path("match/", matching_api.MatchView.as_view(), name="match"),
    path("statistics/", statistics_api.StatisticsView.as_view(), name="statistics"),
    path("calls/", evidence_api.CallListView.as_view(), name="calls"),
    path("gateway/<rescode:code>/records/", gateway.RecordListView.as_view(), name="gateway_records"),
    path("gateway/<rescode:code>/records/<str:key>/", gateway.RecordView.as_view(), name="gateway_record"),
    *router.urls,
    # any other gateway path: the gateway's own 404 (JSON, evidence written), never Django's page
    re_path(r"^gateway/(?P<rest>.*)$", gateway.UnknownPathView.as_view(), name="gateway_unknown"),
]
