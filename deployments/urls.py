from django.urls import path

from deployments import views

app_name = "deployments"
urlpatterns = [
    path("", views.models_list, name="models"),
    path("versions/<int:version_id>/", views.version_detail, name="version"),
    path("versions/<int:version_id>/retire/", views.version_retire, name="retire"),
]
