from django.urls import path

from reviews import views

app_name = "reviews"
urlpatterns = [
    path("upload/", views.upload, name="upload"),
    path("gate/", views.gate, name="gate"),
    path("cases/<int:case_id>/", views.case_detail, name="case"),
]
