from django.urls import path

from . import views

app_name = "workflow"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("start/", views.case_start, name="case_start"),
    path("cases/", views.case_list, name="case_list"),
    path("cases/<int:pk>/", views.case_detail, name="case_detail"),
    path("cases/<int:pk>/withdraw/", views.case_withdraw, name="case_withdraw"),
    path("cases/<int:pk>/suspend/", views.case_suspend, name="case_suspend"),
    path("cases/<int:pk>/resume/", views.case_resume, name="case_resume"),
    path("cases/<int:pk>/extension/", views.case_extension, name="case_extension"),
    path("cases/<int:pk>/comment/", views.case_comment, name="case_comment"),
    path("tasks/<int:pk>/approve/", views.task_approve, name="task_approve"),
    path("tasks/<int:pk>/reject/", views.task_reject, name="task_reject"),
    path("tasks/<int:pk>/return/", views.task_return, name="task_return"),
    path("tasks/<int:pk>/transfer/", views.task_transfer, name="task_transfer"),
    path("tasks/<int:pk>/delegate/", views.task_delegate, name="task_delegate"),
    path("tasks/<int:pk>/add-signers/", views.task_add_signers, name="task_add_signers"),
    path("attachments/<int:pk>/", views.attachment, name="attachment"),
    path("definitions/", views.definition_list, name="definition_list"),
    path("definitions/new/", views.definition_edit, name="definition_create"),
    path("definitions/import/", views.definition_import, name="definition_import"),
    path("definitions/<str:code>/", views.definition_detail, name="definition_detail"),
    path("definitions/<str:code>/edit/", views.definition_edit, name="definition_edit"),
    path("definitions/<str:code>/export/", views.definition_export, name="definition_export"),
    path("definitions/<str:code>/disable/", views.definition_disable, name="definition_disable"),
]
