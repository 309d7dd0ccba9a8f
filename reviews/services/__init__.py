"""Every state change in reviews goes through one function of this package.

Each write is atomic, locks the row it changes, records who and why in history
(and on the audit chain when it bears a decision), and defers side effects (RQ
jobs) to transaction.on_commit. One module per concern, each importing only the
modules below it (docs/architecture.md draws the order):

    errors          ReviewError and its kinds, UnknownProposal
    common          audit-chain entries, opening/reopening a case, jobs on commit, rationale check
    callbacks       signed deliveries to the AI side, recorded now and sent after commit
    quorum          the "too few eligible members" flag
    intake          reports in
    gate            the decision on a task, the kill switch, the rules version, review settings
    policy_changes  proposed and emergency policy changes, applied on approval
    cases           deciding, escalating, expiring and revoking a case
    committee       votes and their tally, recusals, comments, claims
    preferences     a person's notification preferences
    subjects        cases about subjects the apps above reviews own (reviews.subjects)
    oversight       first views of a case version, honeypot reports

The public surface is this package: callers write `from reviews import services`
and `services.vote_cast(...)`, and `__all__` below lists what that spelling
offers. Inside the package, modules import from the module that owns the name.
The underscored helpers are the package's own and are not re-exported.
"""

from reviews.selectors import (
    VOTABLE_STATUSES,
    committee_members,
    eligible_member_ids,
    submitters,
    why_cannot_vote,
)
from reviews.services.callbacks import (
    CALLBACK_BACKOFF_SECONDS,
    CALLBACK_MAX_ATTEMPTS,
    callback_endpoint_set,
    callback_record_attempt,
    callback_retry,
    callback_secret_rotate,
    task_callbacks_queue,
)
from reviews.services.cases import DECISIONS, case_decide, case_escalate, case_revoke, cases_expire
from reviews.services.committee import case_claim, case_release, claim_minutes, comment_add, recuse, vote_cast
from reviews.services.common import (
    MIN_RATIONALE_CHARS,
    MIN_RATIONALE_WORDS,
    NO_RULE_POLICY,
    PAUSE_POLICY,
    check_rationale,
)
from reviews.services.errors import NotAllowed, ReportConflict, ReviewError, UnknownProposal
from reviews.services.gate import (
    decide_task,
    gate_pause,
    gate_resume,
    held_tasks_decide_again,
    recheck_task,
    redecide_paused_tasks,
    review_settings_set,
    rules_changed,
    task_gate_details,
    tasks_gate_details,
    validate_rule,
)
from reviews.services.intake import IngestResult, UploadOutcome, fingerprint, ingest_file, record_of, report_ingest
from reviews.services.oversight import case_view_record, honeypot_seed
from reviews.services.policy_changes import (
    POLICY_FIELDS,
    policy_change_emergency,
    policy_change_propose,
    policy_change_quorum,
    rule_values,
)
from reviews.services.preferences import notification_preference_set
from reviews.services.quorum import case_check_quorum_reach, case_opened_quorum_check, recheck_short_of_members
from reviews.services.subjects import subject_case_open, subject_case_reopen
from reviews.services.two_factor import totp_device_remove, totp_enrol_confirm, totp_enrol_start, totp_verify

__all__ = [
    # errors
    "ReviewError",
    "ReportConflict",
    "NotAllowed",
    "UnknownProposal",
    # reports in
    "IngestResult",
    "record_of",
    "fingerprint",
    "report_ingest",
    "UploadOutcome",
    "ingest_file",
    # the gate and its state
    "PAUSE_POLICY",
    "NO_RULE_POLICY",
    "decide_task",
    "recheck_task",
    "task_gate_details",
    "tasks_gate_details",
    "gate_pause",
    "gate_resume",
    "redecide_paused_tasks",
    "held_tasks_decide_again",
    "review_settings_set",
    "rules_changed",
    "validate_rule",
    # deciding a case
    "DECISIONS",
    "case_decide",
    "case_escalate",
    "cases_expire",
    "case_revoke",
    # callbacks
    "CALLBACK_BACKOFF_SECONDS",
    "CALLBACK_MAX_ATTEMPTS",
    "callback_endpoint_set",
    "callback_secret_rotate",
    "callback_record_attempt",
    "callback_retry",
    "task_callbacks_queue",
    # cases about subjects upper apps own (reviews.subjects)
    "subject_case_open",
    "subject_case_reopen",
    "totp_device_remove",
    "totp_enrol_confirm",
    "totp_enrol_start",
    "totp_verify",
    # the committee
    "MIN_RATIONALE_CHARS",
    "MIN_RATIONALE_WORDS",
    "check_rationale",
    "vote_cast",
    "recuse",
    "comment_add",
    "claim_minutes",
    "case_claim",
    "case_release",
    "case_check_quorum_reach",
    "case_opened_quorum_check",
    "recheck_short_of_members",
    # reads that used to live in services.py, now in reviews.selectors; kept under
    # their old spelling (`services.why_cannot_vote`) for callers written against it
    "VOTABLE_STATUSES",
    "committee_members",
    "submitters",
    "eligible_member_ids",
    "why_cannot_vote",
    # policy changes
    "POLICY_FIELDS",
    "rule_values",
    "policy_change_quorum",
    "policy_change_propose",
    "policy_change_emergency",
    # what the indicators of reviewer behaviour read
    "case_view_record",
    "honeypot_seed",
    # notification preferences
    "notification_preference_set",
]
