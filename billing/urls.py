from django.urls import path

from billing import views

app_name = "billing"
urlpatterns = [
    path("", views.usage, name="usage"),
    path("usage.csv", views.usage_csv, name="usage_csv"),
    path("invoices/", views.invoices, name="invoices"),
    path("invoices/<int:invoice_id>/", views.invoice_detail, name="invoice"),
    path("invoices/<int:invoice_id>/usage.csv", views.invoice_csv, name="invoice_csv"),
    path("portal/", views.portal, name="portal"),
    path("runs/", views.runs, name="runs"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/retry/", views.run_retry, name="run_retry"),
    path("stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
    path("roi/", views.roi, name="roi"),
]
