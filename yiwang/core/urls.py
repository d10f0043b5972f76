from django.urls import path

from . import calendar_views, views

app_name = "core"

urlpatterns = [
    path("", views.workbench, name="workbench"),
    path("audit/", views.audit_list, name="audit_list"),
    path("calendar/", calendar_views.calendar_index, name="calendar"),
    path("calendar/<int:year>/", calendar_views.calendar_year, name="calendar_year"),
    path("attachments/<int:pk>/", views.attachment_download, name="attachment"),
    path("notices/", views.notice_list, name="notices"),
    path("notices/read-all/", views.notice_read_all, name="notice_read_all"),
    path("notices/<int:pk>/read/", views.notice_read, name="notice_read"),
]
