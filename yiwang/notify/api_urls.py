from rest_framework.routers import SimpleRouter

from . import api

app_name = "notify"

router = SimpleRouter()
router.register("messages", api.MessageViewSet, basename="message")
router.register("jobs", api.JobViewSet, basename="job")
router.register("templates", api.TemplateViewSet, basename="template")
urlpatterns = [*router.urls]
