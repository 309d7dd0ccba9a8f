from django.urls import path

from deployments import views

app_name = "deployments"
urlpatterns = [
    path("", views.models_list, name="models"),
    path("versions/<int:version_id>/", views.version_detail, name="version"),
    path("versions/<int:version_id>/retire/", views.version_retire, name="retire"),
    path("rollouts/new/", views.rollout_new, name="rollout_new"),
    path("rollouts/<int:rollout_id>/", views.rollout_detail, name="rollout"),
    path("rollouts/<int:rollout_id>/<slug:action>/", views.rollout_action, name="rollout_action"),
    path("families/<str:family>/drill/", views.drill_now, name="drill"),
]
