"""Hand-written mutation testing of the paths that keep humans in control.

Each mutant is one small, plausible bug in the policy rules, the gate, the
committee's tally or the audit chain: a file, the exact original snippet (it
must occur once), its replacement, and the tests that must fail because of it.
The script copies the repository (without .venv and .git) to a temporary
directory, checks that every selection passes there unmutated, then applies one
mutant at a time to the copy, runs its selection and restores the file. The
working tree is never touched.

    .venv/bin/python scripts/mutate.py            # every mutant (make mutate)
    .venv/bin/python scripts/mutate.py --list     # ids and what each one breaks
    .venv/bin/python scripts/mutate.py gate-report-expiry-edge tally-majority-half

A mutant is killed when its selection fails (pytest exit status 1), survives
when it passes (0). Any other status (a collection error, a snippet that no
longer matches) is an error of this script's list, not a kill: fix the entry.
Exit status: 0 when every mutant was killed, 1 on survivors, 2 on errors.
Not part of CI (docs/testing.md records the last run); run it after changing
one of the targets or their tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IGNORED = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", "*.pyc", ".pytest_cache", ".import_linter_cache", "staticfiles",
    "db.sqlite3", ".test-db*", "bench", "docs", "node_modules",
)  # fmt: skip


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]  # pytest arguments: node ids, files, or "-k" and an expression
    what: str


def m(id: str, file: str, original: str, replacement: str, tests: str | tuple[str, ...], what: str) -> Mutant:
    return Mutant(id, file, original, replacement, (tests,) if isinstance(tests, str) else tests, what)


POLICY = "reviews/policy.py"
GATE = "reviews/services/gate.py"
MODEL_GATE = "deployments/gate.py"
COMPOSED = "fsar/gate.py"
TALLY = "reviews/services/committee.py"
QUORUM = "reviews/services/quorum.py"
CHAIN = "audit/chain.py"

T_GATE = "reviews/tests/test_gate.py"
T_COMMITTEE = "reviews/tests/test_committee.py"
T_ADVERSARY = "fsar/tests/test_adversary.py"
T_MODELS = "deployments/tests/test_gate.py"
T_MODELS_ADVERSARY = "deployments/tests/test_adversary.py"
T_CHAIN = "audit/tests/test_chain.py"
T_KEYED = "audit/tests/test_keyed_chain.py"

# fmt: off
MUTANTS: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- policy rules (reviews/policy.py)
    m("policy-task-type-negated", POLICY,
      "subject.task_type not in self.task_types:", "subject.task_type in self.task_types:",
      f"{T_GATE}::test_a_rule_change_takes_effect_on_the_next_task", "a task-type rule matches the other types"),
    m("policy-glob-negated", POLICY,
      "not fnmatch.fnmatchcase(subject.ai_model, self.ai_model_glob)",
      "fnmatch.fnmatchcase(subject.ai_model, self.ai_model_glob)",
      (T_GATE, "-k", "lapse"), "a model glob matches the models it does not name"),
    m("policy-severity-min-inclusive", POLICY,
      "subject.severity < self.severity_min:", "subject.severity <= self.severity_min:",
      (T_GATE, "-k", "thresholds or severity_range"), "severity_min stops including its own value"),
    m("policy-severity-min-gone", POLICY,
      "if self.severity_min is not None and subject.severity < self.severity_min:", "if False:",
      (T_GATE, "-k", "thresholds or severity_range"), "severity_min is ignored"),
    m("policy-severity-max-inclusive", POLICY,
      "subject.severity > self.severity_max:", "subject.severity >= self.severity_max:",
      (T_GATE, "-k", "severity_range or severity_max_alone"), "severity_max stops including its own value"),
    m("policy-severity-max-gone", POLICY,
      "if self.severity_max is not None and subject.severity > self.severity_max:", "if False:",
      (T_GATE, "-k", "severity_range or severity_max_alone"), "severity_max is ignored"),
    m("policy-severity-missing-matches", POLICY,
      "            if subject.severity is None:\n                return None\n",
      "            if subject.severity is None:\n                pass\n",
      (T_GATE, "-k", "thresholds or severity_range or a_task_without_a_report"),
      "a severity rule matches a task that has no report (None compared to an int)"),
    m("policy-block-execution-negated", POLICY,
      "subject.block_execution != self.block_execution:", "subject.block_execution == self.block_execution:",
      f"{T_GATE}::test_a_rejected_case_denies_its_waiting_tasks_exactly_once", "block_execution matches the opposite"),
    m("policy-words-negated", POLICY,
      "found = [w for w in self.words if w in text]", "found = [w for w in self.words if w not in text]",
      f"{T_GATE}::test_a_denied_report_denies_its_tasks", "proposal words match what lacks them"),
    m("policy-customer-negated", POLICY,
      "subject.customer not in self.customers:", "subject.customer in self.customers:",
      f"{T_GATE}::test_rules_on_customer_and_model_failure_rate", "a customer rule matches the other customers"),
    m("policy-metric-at-threshold", POLICY,
      "not value > self.metric_threshold:", "not value >= self.metric_threshold:",
      (T_GATE, "-k", "metric_exactly"), "a metric exactly at its threshold matches"),
    m("policy-metric-threshold-gone", POLICY,
      "if value is None or not value > self.metric_threshold:", "if value is None:",
      (T_GATE, "-k", "metric_exactly or failure_rate"), "any metric value matches"),
    m("policy-metric-window-off-by-one", POLICY,
      "value = subject.metric(self.metric, self.metric_window)",
      "value = subject.metric(self.metric, self.metric_window + 1)",
      f"{T_GATE}::test_rules_on_customer_and_model_failure_rate", "the metric looks one task further back"),
    m("policy-check-min-equal-max", POLICY,
      "self.severity_min > self.severity_max:", "self.severity_min >= self.severity_max:",
      (T_GATE, "-k", "edge_of_what_is_valid or single_severity"), "a one-severity rule is refused as broken"),
    m("policy-check-min-above-max-gone", POLICY,
      "if self.severity_min is not None and self.severity_max is not None and self.severity_min > self.severity_max:",
      "if False:",
      (T_GATE, "-k", "cannot_be_evaluated"), "an impossible severity range is accepted"),
    m("policy-check-metric-needs-both", POLICY,
      "if self.metric_threshold is None or not self.metric_window:",
      "if self.metric_threshold is None and not self.metric_window:",
      (T_GATE, "-k", "cannot_be_evaluated"), "a metric rule with a threshold but no window is accepted"),
    m("policy-check-quorum", POLICY,
      "self.action == Action.HOLD and self.quorum < 1:", "self.action == Action.HOLD and self.quorum < 0:",
      (T_GATE, "-k", "cannot_be_evaluated"), "a hold that nobody can approve is accepted"),
    m("policy-check-action", POLICY,
      "if self.action not in Action.values:", "if False:",
      (T_GATE, "-k", "cannot_be_evaluated"), "an unknown action is accepted"),
    m("policy-first-match-empty-values", POLICY,
      "        if values is not None:\n            return rule, values",
      "        if values:\n            return rule, values",
      f"{T_GATE}::test_a_task_without_a_report_is_allowed_by_the_default_rule",
      "a rule without conditions (default-allow) never matches"),
    m("policy-priority-reversed", POLICY,
      '.order_by("priority", "id")', '.order_by("-priority", "id")',
      f"{T_GATE}::test_rules_on_customer_and_model_failure_rate", "the last rule wins"),
    m("policy-disabled-rules-apply", POLICY,
      "PolicyRule.objects.filter(enabled=True)", "PolicyRule.objects.all()",
      f"{T_GATE}::test_a_rule_change_takes_effect_on_the_next_task", "a disabled rule still decides"),
    m("policy-cache-never-reloads", POLICY,
      'if _cache["version"] == version:', 'if _cache["version"] is not None:',
      f"{T_GATE}::test_a_rule_change_takes_effect_on_the_next_task", "a rule change is not seen by the gate"),
    m("policy-all-disabled-means-defaults", POLICY,
      "if not rows and not PolicyRule.objects.exists():", "if not rows:",
      f"{T_GATE}::test_when_every_rule_is_disabled_nothing_is_allowed_without_a_decision",
      "disabling every rule brings back default-allow"),
    # ---------------------------------------------------------------- the gate (reviews/services/gate.py)
    m("gate-pause-ignored", GATE,
      "    if state.paused:\n        return GateDecision(", "    if False:\n        return GateDecision(",
      f"{T_GATE}::test_pausing_holds_every_new_task_and_resuming_decides_them_again",
      "the kill switch does not hold new tasks"),
    m("gate-report-expiry-edge", GATE,
      "case.approved_until is None or case.approved_until > timezone.now():",
      "case.approved_until is None or case.approved_until >= timezone.now():",
      (T_GATE, "-k", "lapsed_report"), "a report's approval still covers at approved_until"),
    m("gate-report-expiry-ignored", GATE,
      "case.approved_until is None or case.approved_until > timezone.now():",
      "True:",
      (T_GATE, "-k", "lapsed_report"), "a report's approval never lapses until cases_expire runs"),
    m("gate-report-lapse-not-reopened", GATE,
      "    if case.status in (CaseStatus.APPROVED, CaseStatus.EXPIRED):\n        require_transaction()",
      "    if False:\n        require_transaction()",
      (T_GATE, "-k", "lapsed_report"), "a lapsed report's case is not reopened for the committee"),
    m("gate-report-rejected-ignored", GATE,
      "    if case.status == CaseStatus.REJECTED:", "    if False:",
      f"{T_ADVERSARY}::test_start_after_the_case_was_rejected_is_refused", "a rejected report's task is only held"),
    m("gate-report-denied-ignored", GATE,
      "if report.gate_decision == Action.DENY:", "if False:",
      f"{T_GATE}::test_a_denied_report_denies_its_tasks", "a denied report's task is decided by the rules"),
    m("gate-report-advisory-holds", GATE,
      "if case is None or case.status == CaseStatus.ADVISORY:", "if case is None:",
      f"{T_GATE}::test_an_advisory_case_can_be_escalated_to_a_hold", "an advisory case holds its tasks"),
    m("gate-task-case-expiry-edge", GATE,
      "latest.approved_until and latest.approved_until > now:",
      "latest.approved_until and latest.approved_until >= now:",
      (T_GATE, "-k", "lapsed_task_case"), "a task case's approval still covers at approved_until"),
    m("gate-task-case-expiry-ignored", GATE,
      "latest.approved_until and latest.approved_until > now:", "latest.approved_until:",
      (T_GATE, "-k", "lapsed_task_case"), "a task case's approval never lapses until cases_expire runs"),
    m("gate-task-case-lapse-new-case", GATE,
      "        if latest.status in (CaseStatus.APPROVED, CaseStatus.EXPIRED):\n            _reopen(",
      "        if False:\n            _reopen(",
      (T_GATE, "-k", "lapsed_task_case or approval_lapses"), "a lapsed task case is not reopened"),
    m("gate-no-rule-allows", GATE,
      'return _hold_for_tasks(task, None, "no policy rule matched")',
      'return GateDecision("allow", "no policy rule matched", None, None)',
      f"{T_GATE}::test_when_every_rule_is_disabled_nothing_is_allowed_without_a_decision",
      "no matching rule means allow"),
    m("gate-deny-becomes-hold", GATE,
      "    if rule.action == Action.DENY:\n", "    if False:\n",
      f"{T_GATE}::test_rules_on_customer_and_model_failure_rate", "a deny rule only holds"),
    m("gate-report-fields-not-seen", GATE,
      "severity=report.severity if report else None,", "severity=None,",
      f"{T_GATE}::test_a_linked_task_is_judged_by_its_reports_fields_under_the_current_rules",
      "a task is judged without its report's severity"),
    m("gate-recheck-reason-unexplained", GATE,
      'decision.case and str(decision.case) == task.gate_case:',
      'decision.case and str(decision.case) != task.gate_case:',
      f"{T_GATE}::test_a_start_refused_on_the_case_that_allowed_the_task_says_what_changed_it",
      "a refused start does not say what changed the case"),
    m("gate-recheck-missing-report", GATE,
      'return GateDecision("deny", f"its report {task.proposal_ref} no longer exists", None, None)',
      'return GateDecision("allow", f"its report {task.proposal_ref} no longer exists", None, None)',
      f"{T_GATE}::test_a_task_whose_report_was_deleted_since_cannot_start",
      "a task whose report was deleted may start"),
    m("gate-pause-stops-only-running", GATE,
      "ExecutionTask.objects.filter(status__in=STOPPABLE, submitted_by__callback__enabled=True)",
      'ExecutionTask.objects.filter(status="running", submitted_by__callback__enabled=True)',
      "reviews/tests/test_callbacks.py::test_a_pause_tells_allowed_tasks_not_started_yet_to_stop",
      "a pause does not tell allowed tasks to stop"),
    # ---------------------------------------------------------------- the model gate (deployments/gate.py)
    m("models-denied-ignored", MODEL_GATE,
      "    if snap.status in DENIED_STATUSES:", "    if False:",
      f"{T_MODELS}::test_a_blocked_version_denies_its_tasks_naming_the_status", "a blocked version's tasks run"),
    m("models-pending-ignored", MODEL_GATE,
      "    if snap.status == VersionStatus.PENDING_REVIEW:\n        waiting",
      "    if False:\n        waiting",
      f"{T_MODELS}::test_a_task_on_a_pending_version_is_held_and_two_approvals_release_it_once",
      "a version waiting for review runs"),
    m("models-lapse-edge", MODEL_GATE,
      "if snap.approved_until is not None and snap.approved_until <= now:\n        return",
      "if snap.approved_until is not None and snap.approved_until < now:\n        return",
      (T_MODELS, "-k", "approved_until_exactly"), "a version's approval still covers at approved_until"),
    m("models-unregistered-deny-is-hold", MODEL_GATE,
      'GateDecision("deny" if mode == "deny" else "hold", why',
      'GateDecision("hold", why',
      (T_MODELS, "-k", "setting_decides"), "MODELS_UNREGISTERED=deny only holds"),
    m("models-cache-stale", MODEL_GATE,
      'if _cache["version"] == rules_version and ai_model in rows:', "if ai_model in rows:",
      (T_MODELS, "-k", "revoking or rejecting"), "a version's new status is not seen by the gate"),
    # ---------------------------------------------------------------- the composed gate (fsar/gate.py)
    m("composed-decide-skips-model", COMPOSED,
      "    by_model = model_decision(task.ai_model, rules_version=state.rules_version) or audit_decision(\n"
      "        task.ai_model, rules_version=state.rules_version\n    )\n"
      "    if by_model is not None:\n        return by_model\n    try:",
      "    by_model = None or audit_decision(\n"
      "        task.ai_model, rules_version=state.rules_version\n    )\n"
      "    if by_model is not None:\n        return by_model\n    try:",
      f"{T_MODELS}::test_a_blocked_version_denies_its_tasks_naming_the_status",
      "registration does not ask about the model version"),
    m("composed-recheck-skips-model", COMPOSED,
      "    by_model = model_decision(task.ai_model, rules_version=state.rules_version) or audit_decision(\n"
      "        task.ai_model, rules_version=state.rules_version\n    )\n"
      "    if by_model is not None:\n        return by_model\n    return review_services.recheck_task",
      "    by_model = None or audit_decision(\n"
      "        task.ai_model, rules_version=state.rules_version\n    )\n"
      "    if by_model is not None:\n        return by_model\n    return review_services.recheck_task",
      f"{T_MODELS_ADVERSARY}::test_a_task_allowed_on_an_approved_version_cannot_start_after_the_approval_lapsed",
      "start does not ask about the model version again"),
    m("composed-recheck-is-decide-once", COMPOSED,
      "    return review_services.recheck_task(task, state=state, alert_firing=model_alert_firing)",
      '    return GateDecision("allow", "checked at registration", None, None)',
      (T_ADVERSARY, "-k", "start_after"), "start trusts the answer given at registration"),
    # ---------------------------------------------------------------- the tally (committee.py, quorum.py)
    m("tally-majority-half", TALLY,
      "len(rejects) * 2 > len(eligible)", "len(rejects) * 2 >= len(eligible)",
      (T_COMMITTEE, "-k", "majority"), "half of the eligible members rejecting is a majority"),
    m("tally-majority-always", TALLY,
      "if rejects and (not case.decide_by_majority or len(rejects) * 2 > len(eligible)):",
      "if rejects and len(rejects) * 2 > len(eligible):",
      f"{T_COMMITTEE}::test_any_reject_rejects_by_default", "a single reject no longer rejects by default"),
    m("tally-majority-ignored", TALLY,
      "if rejects and (not case.decide_by_majority or len(rejects) * 2 > len(eligible)):",
      "if rejects:",
      (T_COMMITTEE, "-k", "majority"), "a majority policy rejects on one reject"),
    m("tally-removed-member-counts", TALLY,
      "v.choice == Vote.Choice.APPROVE and v.member_id in eligible]", "v.choice == Vote.Choice.APPROVE]",
      (T_COMMITTEE, "-k", "removed_from_the_committee"), "an approval of a member removed since still counts"),
    m("tally-quorum-off-by-one", TALLY,
      "elif len(approvals) >= case.quorum:", "elif len(approvals) > case.quorum:",
      f"{T_COMMITTEE}::test_the_quorum_of_approvals_approves_and_releases_the_waiting_task",
      "the quorum needs one approval more"),
    m("tally-quorum-minus-one", TALLY,
      "elif len(approvals) >= case.quorum:", "elif len(approvals) >= case.quorum - 1:",
      f"{T_COMMITTEE}::test_the_quorum_of_approvals_approves_and_releases_the_waiting_task",
      "the quorum needs one approval less"),
    m("tally-old-versions-count", TALLY,
      "votes = list(case.votes.filter(case_version=case.version).select_related(\"member\"))",
      "votes = list(case.votes.all().select_related(\"member\"))",
      (T_COMMITTEE, "-k", "revision"), "votes on a version since revised still count"),
    m("quorum-short-edge", QUORUM,
      "short = len(eligible_member_ids(case)) < case.quorum",
      "short = len(eligible_member_ids(case)) <= case.quorum",
      (T_COMMITTEE, "-k", "too_small or reflag"), "a committee exactly the quorum's size is flagged short"),
    m("quorum-recheck-ignores-exclusions", QUORUM,
      "if (len(members - excluded.get(case_id, set())) < quorum) != short:",
      "if (len(members) < quorum) != short:",
      (T_COMMITTEE, "-k", "short_of_members or reflag"), "the hourly re-check forgets recusals and submitters"),
    # ---------------------------------------------------------------- the audit chain (audit/chain.py)
    m("chain-relink-unchecked", CHAIN,
      "        if entry.prev_hash != self.prev_hash:\n", "        if False:\n",
      (T_KEYED, "-k", "re_linked or own_hash_was_recomputed"), "an entry re-linked after an edit verifies"),
    m("chain-gap-unchecked", CHAIN,
      "        if entry.seq != self.seq + 1:\n", "        if False:\n",
      f"{T_CHAIN}::test_a_deleted_middle_entry_is_reported", "a deleted middle entry goes unnoticed"),
    m("chain-content-unchecked", CHAIN,
      "        if compute_hash(key=self.key, **_content(entry)) != entry.hash:\n", "        if False:\n",
      f"{T_CHAIN}::test_an_edited_entry_is_reported_by_number", "an edited entry verifies"),
    m("chain-actor-not-hashed", CHAIN,
      '        "actor": actor,\n', "",
      f"{T_CHAIN}::test_an_edited_actor_is_caught_too", "an entry's actor can be changed unnoticed"),
    m("chain-unkeyed-tail-accepted", CHAIN,
      '        if entry.key_id == "" and self.key_id:\n', "        if False:\n",
      f"{T_KEYED}::test_rewriting_only_the_tail_without_keys_is_caught_where_the_keys_stop",
      "entries rewritten with plain SHA-256 after keyed ones verify"),
    m("chain-key-change-unannounced", CHAIN,
      "        if self.key_id is not None and entry.kind not in SEGMENT_STARTS:\n", "        if False:\n",
      f"{T_KEYED}::test_a_leaked_old_key_cannot_forge_entries_in_the_new_segment",
      "a key change without a rotation entry verifies"),
    m("chain-head-hash-unchecked", CHAIN,
      "(head.seq != self.seq or head.hash != self.prev_hash)", "(head.seq != self.seq)",
      f"{T_KEYED}::test_a_head_row_whose_hash_is_not_the_last_entrys_is_reported",
      "a head row whose hash disagrees with the chain verifies"),
    m("chain-head-unchecked", CHAIN,
      "if head is not None and (head.seq != self.seq or head.hash != self.prev_hash):", "if False:",
      f"{T_CHAIN}::test_deleting_the_newest_entries_is_caught_by_the_head_row",
      "deleting the newest entries verifies"),
    m("chain-expect-head-ignored", CHAIN,
      "        if not self.seen_expected:\n", "        if False:\n",
      f"{T_CHAIN}::test_deleting_the_newest_entries_and_fixing_the_head_is_caught_with_expect_head",
      "--expect-head is not checked"),
    m("chain-anchor-mismatch-ignored", CHAIN,
      "            if anchored.hash != entry.hash:\n", "            if False:\n",
      f"{T_KEYED}::test_a_chain_rebuilt_after_an_anchor_is_caught_at_the_anchored_entry",
      "an entry that differs from its anchored hash verifies"),
    m("chain-anchor-past-end-ignored", CHAIN,
      "        if self.anchors:\n            seq = min(self.anchors)",
      "        if False:\n            seq = min(self.anchors)",
      (T_KEYED, "-k", "anchor"), "an anchor past the end of the chain verifies"),
    m("chain-plain-sha256-under-key", CHAIN,
      "    if key is None:\n        return hashlib.sha256(body).hexdigest()",
      "    if True:\n        return hashlib.sha256(body).hexdigest()",
      f"{T_CHAIN}::test_the_hash_is_hmac_sha256_under_the_chain_key_over_the_canonical_content",
      "the chain is not keyed"),
    m("chain-append-unlinked", CHAIN,
      "        prev_hash=head.hash,\n", "        prev_hash=GENESIS,\n",
      f"{T_CHAIN}::test_entries_link_to_the_previous_hash_and_the_head_follows", "new entries do not link"),
    m("chain-new-key-no-segment", CHAIN,
      "    if head.seq and head.key_id != key.key_id:\n        _start_segment(",
      "    if False:\n        _start_segment(",
      f"{T_KEYED}::test_the_first_entry_under_a_new_key_starts_its_segment_by_itself",
      "a new key's first entry starts no segment"),
    m("chain-rotation-seals-broken", CHAIN,
      "    if not report.ok:\n        raise RotationRefused(", "    if False:\n        raise RotationRefused(",
      f"{T_KEYED}::test_rotation_does_not_seal_a_broken_chain", "a broken chain is sealed under a new key"),
)
# fmt: on


def run_pytest(workdir: Path, args: tuple[str, ...], timeout: int) -> tuple[int, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("TEST_DB_NAME", None)  # the copy's own test database, never a shared one
    # The copy's test database is created by the first run and reused by the others (migrations
    # are not mutated): most of a run's time is otherwise spent migrating.
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--reuse-db", *args]
    try:
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 1, "timed out (counted as killed: the mutant hangs the tests)"
    tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
    return done.returncode, tail[0]


def baseline_runs(mutants: list[Mutant]) -> list[tuple[str, ...]]:
    """Every mutant's tests, in few pytest runs: the node ids together, then one run
    per file for the `file -k expression` selections (their expressions or-ed)."""
    nodes = sorted({arg for mutant in mutants for arg in mutant.tests if "::" in arg})
    expressions: dict[str, set[str]] = {}
    for mutant in mutants:
        if any("::" in arg for arg in mutant.tests):
            continue
        path, *rest = mutant.tests
        if rest and rest[0] == "-k" and len(rest) == 2:
            expressions.setdefault(path, set()).add(f"({rest[1]})")
        else:
            expressions.setdefault(path, set()).add("")
    runs = [tuple(nodes)] if nodes else []
    for path, found in sorted(expressions.items()):
        runs.append((path,) if "" in found else (path, "-k", " or ".join(sorted(found))))
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ids", nargs="*", help="run only these mutants")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per pytest run")
    options = parser.parse_args()

    ids = [mutant.id for mutant in MUTANTS]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        print(f"duplicate mutant ids: {sorted(duplicated)}")
        return 2
    chosen = [mutant for mutant in MUTANTS if not options.ids or mutant.id in options.ids]
    unknown = set(options.ids) - set(ids)
    if unknown:
        print(f"unknown mutant ids: {sorted(unknown)}")
        return 2
    if options.list:
        for mutant in chosen:
            print(f"{mutant.id:40} {mutant.file:32} {mutant.what}")
        return 0

    errors: list[str] = []
    for mutant in chosen:
        count = (ROOT / mutant.file).read_text().count(mutant.original)
        if count != 1:
            errors.append(f"{mutant.id}: the original snippet occurs {count} times in {mutant.file}")
    if errors:
        print("\n".join(errors))
        return 2

    with tempfile.TemporaryDirectory(prefix="fsar-mutate-") as tmp:
        work = Path(tmp) / "repo"
        shutil.copytree(ROOT, work, ignore=IGNORED)
        print(f"{len(chosen)} mutants; checking that their tests pass unmutated in {work}")
        for args in baseline_runs(chosen):
            status, tail = run_pytest(work, args, options.timeout)
            if status != 0:
                print(f"the unmutated tests fail ({' '.join(args)}): {tail}")
                return 2

        killed, survived = [], []
        started = time.monotonic()
        for number, mutant in enumerate(chosen, 1):
            path = work / mutant.file
            original = path.read_text()
            try:
                path.write_text(original.replace(mutant.original, mutant.replacement, 1))
                status, tail = run_pytest(work, mutant.tests, options.timeout)
            finally:
                path.write_text(original)
            if status == 1:
                killed.append(mutant)
                verdict = "killed"
            elif status == 0:
                survived.append(mutant)
                verdict = "SURVIVED"
            else:
                errors.append(f"{mutant.id}: pytest exited {status}: {tail}")
                verdict = f"ERROR ({status})"
            print(f"[{number:2}/{len(chosen)}] {verdict:9} {mutant.id}: {mutant.what}  ({tail})", flush=True)

    total = len(killed) + len(survived)
    minutes = (time.monotonic() - started) / 60
    print(f"\n{len(killed)} of {total} mutants killed ({100 * len(killed) / max(total, 1):.0f}%) in {minutes:.1f} min")
    for mutant in survived:
        print(f"  survived: {mutant.id} ({mutant.file}): {mutant.what}")
    for error in errors:
        print(f"  error: {error}")
    if errors:
        return 2
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
