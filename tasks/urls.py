from django.urls import path

from tasks import views

app_name = "tasks"
urlpatterns = [
    path("metrics/", views.metrics_page, name="metrics"),
    path("held/", views.held_tasks, name="held"),
]
