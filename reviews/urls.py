from django.urls import path

from reviews import views

app_name = "reviews"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("upload/", views.upload, name="upload"),
    path("format/", views.report_format, name="format"),
    path("gate/", views.gate, name="gate"),
    path("2fa/", views.two_factor, name="two_factor"),
    path("2fa/verify/", views.two_factor_verify, name="two_factor_verify"),
    path("cases/<int:case_id>/", views.case_detail, name="case"),
    path("cases/<int:case_id>/vote/", views.vote, name="vote"),
    path("cases/<int:case_id>/recuse/", views.recuse, name="recuse"),
    path("cases/<int:case_id>/revoke/", views.revoke, name="revoke"),
    path("cases/<int:case_id>/escalate/", views.escalate, name="escalate"),
    path("cases/<int:case_id>/comment/", views.comment, name="comment"),
    path("cases/<int:case_id>/claim/", views.claim, name="claim"),
    path("cases/<int:case_id>/release/", views.release, name="release"),
    path("cases/<int:case_id>/export.<str:fmt>", views.case_export, name="case_export"),
    path("export/", views.export_range, name="export"),
    path("notifications/", views.notification_settings, name="notifications"),
]
