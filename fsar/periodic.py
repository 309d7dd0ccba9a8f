"""The periodic jobs and how often each runs (seconds). One list, used by
rqcron (fsar/cron.py) with Redis and by `manage.py run_periodic` without it."""

from assurance.jobs import audits_sweep
from audit.jobs import verify_audit_chain_job
from billing.jobs import invoice_run_scheduled, reconcile_invoices, stripe_events_drain
from deployments.jobs import redecide_all_unregistered, rollouts_tick
from indicators.jobs import TICK_SECONDS as INDICATORS_TICK_SECONDS
from indicators.jobs import indicators_tick
from reviews.jobs import expire_approvals, recheck_short_of_members, retry_due_callbacks, sla_reminders
from tasks.jobs import drain_metrics_pending, fail_abandoned_tasks, rebuild_metrics_rollups
from tasks.rollups import DRAIN_INTERVAL_SECONDS

PERIODIC_JOBS = [
    (fail_abandoned_tasks, 300),
    (invoice_run_scheduled, 3_600),
    (reconcile_invoices, 900),
    (stripe_events_drain, 60),
    (verify_audit_chain_job, 86_400),
    (retry_due_callbacks, 60),
    (expire_approvals, 300),
    (sla_reminders, 300),  # committee SLA near / past mails, each once
    (recheck_short_of_members, 3_600),  # also run at once when the committee changes
    (drain_metrics_pending, DRAIN_INTERVAL_SECONDS),  # finished tasks into the metrics rollups
    (rebuild_metrics_rollups, 86_400),  # repairs the last 48 hours of metrics rollups
    (redecide_all_unregistered, 300),  # tasks held on a model version registered since (also at once)
    (rollouts_tick, 60),  # rollout step analyses, scheduled and running rollback drills (docs/rollouts.md)
    (audits_sweep, 60),  # built-in audit suites when their cron is due; demotions of overdue versions
    (indicators_tick, INDICATORS_TICK_SECONDS),  # indicator points (this and the last hour and day), detectors
]
