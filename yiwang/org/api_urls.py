from django.urls import path
from rest_framework.routers import SimpleRouter

from . import api

app_name = "org"

router = SimpleRouter()
router.register("units", api.UnitViewSet, basename="unit")
router.register("people", api.PersonViewSet, basename="person")
router.register("roles", api.RoleViewSet, basename="role")
router.register("delegations", api.DelegationViewSet, basename="delegation")

urlpatterns = [path("me/", api.me, name="me"), path("usage/", api.usage, name="usage"), *router.urls]
