from django.contrib.auth import views as auth_views
from django.urls import path

from . import oidc, views
from .urls_excel import urlpatterns as views_excel_urls

app_name = "org"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("login/oidc/", oidc.LoginStart.as_view(), name="oidc_login"),
    path("login/oidc/callback/", oidc.Callback.as_view(), name="oidc_callback"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("switch/", views.switch_post, name="switch_post"),
    path("password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("otp/setup/", views.otp_setup, name="otp_setup"),
    path("otp/verify/", views.otp_verify, name="otp_verify"),
    path("units/", views.unit_list, name="unit_list"),
    path("units/new/", views.unit_create, name="unit_create"),
    path("units/<int:pk>/", views.unit_detail, name="unit_detail"),
    path("units/<int:pk>/edit/", views.unit_edit, name="unit_edit"),
    path("units/<int:pk>/merge/", views.unit_merge, name="unit_merge"),
    path("units/<int:pk>/abolish/", views.unit_abolish, name="unit_abolish"),
    path("people/", views.person_list, name="person_list"),
    path("people/new/", views.person_create, name="person_create"),
    path("people/<int:pk>/", views.person_detail, name="person_detail"),
    path("people/<int:pk>/edit/", views.person_edit, name="person_edit"),
    path("people/<int:pk>/posts/", views.post_add, name="post_add"),
    path("people/<int:pk>/password/", views.person_set_password, name="person_set_password"),
    path("posts/<int:pk>/remove/", views.post_remove, name="post_remove"),
    path("delegations/", views.delegation_list, name="delegation_list"),
    path("delegations/<int:pk>/revoke/", views.delegation_revoke, name="delegation_revoke"),
    path("usage/", views.usage, name="usage"),
    path("systems/", views.system_list, name="system_list"),
    path("systems/<int:pk>/", views.system_detail, name="system_detail"),
    path("keys/<int:pk>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    *views_excel_urls,
]
