from rest_framework.routers import SimpleRouter

app_name = "workflow"

router = SimpleRouter()
urlpatterns = [*router.urls]
