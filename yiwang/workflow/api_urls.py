from rest_framework.routers import SimpleRouter

from . import api

app_name = "workflow"

router = SimpleRouter()
router.register("tasks", api.TaskViewSet, basename="task")
router.register("cases", api.CaseViewSet, basename="case")
router.register("definitions", api.DefinitionViewSet, basename="definition")
urlpatterns = [*router.urls]
