"""What the operator dashboard shows: each app contributes a section, rendered
from `templates/<app>/_dashboard.html` with the context its selectors build."""

from django.utils import timezone

from assurance import selectors as assurance_selectors
from billing import selectors as billing_selectors
from deployments import selectors as deployment_selectors
from indicators import views_data as indicator_pages
from reviews import selectors as review_selectors
from tasks import metrics_display
from tasks import selectors as task_selectors


def context(user=None) -> dict:
    """`user`: the operator looking (alerts about a reviewer who is that user are not shown to them)."""
    indicator_alerts = indicator_pages.open_alerts_for(indicator_pages.viewer_for(user)) if user is not None else []
    return {
        "indicator_alerts": indicator_alerts,
        "task_counts": task_selectors.status_counts_by_type(),
        "task_performance": metrics_display.dashboard_summary(now=timezone.now()),
        **review_selectors.dashboard_context(),
        **deployment_selectors.dashboard_context(),
        **billing_selectors.dashboard_context(),
        "audit_problems": assurance_selectors.problems(),
    }
