"""yiwang's URLs plus ``/bench/raw/<code>/records/<key>/``: the lookup without checks or audit.

Same framework path as the gateway (a DRF APIView, no authentication classes), the same
``registries.record_fetch`` on the same items, the same compact JSON; only the gateway's
checks (key, scope, purpose, grant, items, rate) and its evidence (audit + counters) are left out.
"""

import json
import os

from django.http import HttpResponse
from django.urls import path

from yiwang.exchange import registries
from yiwang.exchange.api import converters  # noqa: F401 - the "rescode" converter
from yiwang.exchange.api.gateway import GatewayView
from yiwang.urls import urlpatterns as yiwang_urlpatterns

ITEMS = os.environ.get("BENCH_ITEMS", "id_number,name,gender,birth_date,address,street").split(",")


class RawRecordView(GatewayView):
    """The gateway's view class (same DRF set-up), without its checks and evidence."""

    def get(self, request, code: str, key: str):
        spec = registries.REGISTRIES["resident"]
        record = registries.record_fetch(spec, registries.key_clean(spec, key), ITEMS)
        body = json.dumps({"resource": code, "record": record}, ensure_ascii=False, separators=(",", ":"))
        return HttpResponse(body.encode(), status=200 if record else 404, content_type="application/json")


urlpatterns = [path("bench/raw/<rescode:code>/records/<str:key>/", RawRecordView.as_view()), *yiwang_urlpatterns]
