from django.urls import path

from . import views

app_name = "core"

urlpatterns = [
    path("", views.workbench, name="workbench"),
    path("audit/", views.audit_list, name="audit_list"),
    path("attachments/<int:pk>/", views.attachment_download, name="attachment"),
    path("notices/", views.notice_list, name="notices"),
    path("notices/read-all/", views.notice_read_all, name="notice_read_all"),
    path("notices/<int:pk>/read/", views.notice_read, name="notice_read"),
]
