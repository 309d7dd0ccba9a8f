from django.urls import path

from indicators import views

app_name = "indicators"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("series/<int:series_id>/", views.series_detail, name="series"),
    path("alerts/<int:alert_id>/", views.alert_detail, name="alert"),
    path("alerts/<int:alert_id>/<slug:action>/", views.alert_action, name="alert_action"),
]
