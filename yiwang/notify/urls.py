from django.urls import path

from . import views

app_name = "notify"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("send/", views.send, name="send"),
    path("send/preview/", views.send_preview, name="send_preview"),
    path("templates/", views.template_list, name="templates"),
    path("templates/new/", views.template_edit, name="template_create"),
    path("templates/preview/", views.template_preview, name="template_preview"),
    path("templates/<int:pk>/", views.template_detail, name="template_detail"),
    path("templates/<int:pk>/edit/", views.template_edit, name="template_edit"),
    path("templates/<int:pk>/sample.csv", views.job_sample, name="job_sample"),
    path("jobs/", views.job_list, name="jobs"),
    path("jobs/new/", views.job_create, name="job_create"),
    path("jobs/columns/", views.job_columns, name="job_columns"),
    path("jobs/<int:pk>/", views.job_detail, name="job_detail"),
    path("jobs/<int:pk>/progress/", views.job_progress, name="job_progress"),
    path("jobs/<int:pk>/confirm/", views.job_confirm, name="job_confirm"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<int:pk>/errors.csv", views.job_error_report, name="job_error_report"),
    path("jobs/<int:pk>/failures.csv", views.job_failures, name="job_failures"),
    path("messages/", views.message_list, name="messages"),
    path("policies/", views.policy_list, name="policies"),
    path("policies/default/", views.policy_edit, name="policy_default"),
    path("policies/<int:unit_pk>/", views.policy_edit, name="policy_edit"),
    path("optouts/", views.optout_list, name="optouts"),
    path("optouts/add/", views.optout_add, name="optout_add"),
    path("optouts/remove/", views.optout_remove, name="optout_remove"),
    path("receipts/<str:gateway_code>/", views.receipts, name="receipts"),
    path("replies/", views.reply_list, name="replies"),
    path("replies/<str:gateway_code>/", views.replies, name="replies_push"),
]
