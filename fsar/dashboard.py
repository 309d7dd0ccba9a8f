"""What the operator dashboard shows: each app contributes a section, rendered
from `templates/<app>/_dashboard.html` with the context its selectors build."""

from django.utils import timezone

from assurance import selectors as assurance_selectors
from billing import selectors as billing_selectors
from deployments import selectors as deployment_selectors
from reviews import selectors as review_selectors
from tasks import metrics_display
from tasks import selectors as task_selectors


def context() -> dict:
    return {
        "task_counts": task_selectors.status_counts_by_type(),
        "task_performance": metrics_display.dashboard_summary(now=timezone.now()),
        **review_selectors.dashboard_context(),
        **deployment_selectors.dashboard_context(),
        **billing_selectors.dashboard_context(),
        "audit_problems": assurance_selectors.problems(),
    }
