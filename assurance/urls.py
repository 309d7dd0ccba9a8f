from django.urls import path

from assurance import views

app_name = "assurance"
urlpatterns = [
    path("", views.grid, name="grid"),
    path("upload/", views.upload, name="upload"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/evidence/", views.run_evidence, name="evidence"),
]
