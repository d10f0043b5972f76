"""Pages of the exchange module; each area's views live in ``views/<area>.py``."""

from django.urls import path

from .views import access, catalog, disputes, evidence, matching, registries, statistics, subscriptions

app_name = "exchange"

urlpatterns = [
    # catalogue (目录)
    path("", catalog.entry_list, name="catalog"),
    # AREA catalog: more routes here
    path("entries/new/", catalog.entry_create, name="entry_create"),
    path("entries/export.xlsx", catalog.entry_export_xlsx, name="entry_export_xlsx"),
    path("entries/export.jsonld", catalog.entry_export_jsonld, name="entry_export_jsonld"),
    path("entries/<int:pk>/", catalog.entry_detail, name="entry_detail"),
    path("entries/<int:pk>/edit/", catalog.entry_edit, name="entry_edit"),
    path("entries/<int:pk>/submit/", catalog.entry_submit, name="entry_submit"),
    path("entries/<int:pk>/revise/", catalog.entry_revise, name="entry_revise"),
    path("entries/<int:pk>/revoke/", catalog.entry_revoke, name="entry_revoke"),
    path("entries/<int:pk>/delete/", catalog.entry_delete, name="entry_delete"),
    path("entries/<int:pk>/request/", access.request_create, name="request_create"),
    # access requests and grants (申请与授权)
    # AREA access: routes here
    path("requests/", access.request_list, name="requests"),
    path("requests/<int:pk>/", access.request_detail, name="request_detail"),
    path("requests/<int:pk>/decide/", access.request_decide, name="request_decide"),
    path("requests/<int:pk>/withdraw/", access.request_withdraw, name="request_withdraw"),
    path("grants/", access.grant_list, name="grants"),
    path("grants/<int:pk>/", access.grant_detail, name="grant_detail"),
    path("grants/<int:pk>/revoke/", access.grant_revoke, name="grant_revoke"),
    path("grants/<int:pk>/limit/", access.grant_limit, name="grant_limit"),
    # base registries (基础库) and imports
    # AREA registries: routes here
    path("registries/", registries.registry_list, name="registries"),
    path("registries/<str:code>/", registries.registry_detail, name="registry"),
    path("registries/<str:code>/import/", registries.import_create, name="import_create"),
    path("registries/<str:code>/template.csv", registries.import_template, name="import_template"),
    path("registries/<str:code>/<int:pk>/", registries.registry_record, name="registry_record"),
    path("imports/", registries.import_list, name="imports"),
    path("imports/<int:pk>/", registries.import_detail, name="import_detail"),
    path("imports/<int:pk>/errors.csv", registries.import_errors, name="import_errors"),
    # disputes (疑义校核)
    # AREA disputes: routes here
    path("disputes/", disputes.dispute_list, name="disputes"),
    path("disputes/new/", disputes.dispute_create, name="dispute_create"),
    path("disputes/<int:pk>/", disputes.dispute_detail, name="dispute_detail"),
    path("disputes/<int:pk>/answer/", disputes.dispute_answer, name="dispute_answer"),
    # subscriptions (订阅)
    # AREA subscriptions: routes here
    path("subscriptions/", subscriptions.subscription_list, name="subscriptions"),
    path("subscriptions/new/", subscriptions.subscription_create, name="subscription_create"),
    path("subscriptions/<int:pk>/cancel/", subscriptions.subscription_cancel, name="subscription_cancel"),
    path("subscriptions/<int:pk>/retry/", subscriptions.subscription_retry, name="subscription_retry"),
    # "don't collect what you can share" (免于重复采集)
    # AREA matching: routes here
    path("matching/", matching.match_page, name="matching"),
    # statistics (统计) and evidence (调用记录)
    # AREA statistics: routes here
    path("statistics/", statistics.statistics_page, name="statistics"),
    # AREA evidence: routes here
    path("evidence/", evidence.call_list, name="evidence"),
    path("evidence/export.csv", evidence.call_export, name="evidence_export"),
    path("evidence/verify/", evidence.chain_verify, name="chain_verify"),
]
