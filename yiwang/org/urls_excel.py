"""Excel import/export of units and people; included into org/urls.py (namespace "org")."""

from django.urls import path

from . import views_excel

urlpatterns = [
    path("units/export/", views_excel.units_export, name="unit_export"),
    path("units/template/", views_excel.units_template, name="unit_template"),
    path("units/import/", views_excel.units_import, name="unit_import"),
    path("people/export/", views_excel.people_export, name="person_export"),
    path("people/template/", views_excel.people_template, name="person_template"),
    path("people/import/", views_excel.people_import, name="person_import"),
    path("imports/<int:pk>/", views_excel.import_job, name="import_job"),
    path("imports/<int:pk>/progress/", views_excel.import_job_progress, name="import_job_progress"),
]
