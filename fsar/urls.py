from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from fsar import views
from fsar.api import api, api_not_found
from fsar.prometheus.views import metrics

admin.site.site_header = "FSAR administration"
admin.site.site_title = "FSAR admin"
# The model list is on the admin's home page; without the sidebar, wide lists (tasks) fit a laptop screen.
admin.site.enable_nav_sidebar = False

handler500 = "fsar.views.server_error"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("healthz/ready", views.healthz_ready, name="healthz_ready"),
    path("metrics", metrics, name="metrics"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    re_path(r"^api/", api_not_found),
    path("tasks/", include("tasks.urls")),
    path("reviews/", include("reviews.urls")),
    path("billing/", include("billing.urls")),
    path("audit/", include("audit.urls")),
    path("models/", include("deployments.urls")),
    path("audits/", include("assurance.urls")),
    path("indicators/", include("indicators.urls")),
]
