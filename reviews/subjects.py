"""Cases about subjects that the apps above reviews own: a model version
(deployments), an audit run (assurance), a rollout's analysis. reviews never
imports those apps; each registers what reviews needs to know in its
AppConfig.ready():

    from reviews import subjects
    subjects.register_kind("model", label="Model version", plural="Model versions",
                           submitters=lambda case: {...user ids who may not vote...})
    subjects.register_panel("model", template="deployments/_case_panel.html",
                            context=lambda case, user: {...})
    subjects.register_approval_guard("model", lambda case: "reason" or None)

A case of a registered kind carries a plain-string `subject_ref` (e.g.
"model-version:12") and is opened and reopened through
`reviews.services.subject_case_open` / `subject_case_reopen`; its decisions
reach the owning app by the `reviews.signals.case_changed` signal. Such a
case is decided by approve or reject only (the subject is not revised in
place: a changed model is a new version with a case of its own), and when it
is approved the tasks held on it are decided again by the whole gate, so the
rest of the policy still applies to them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# A reviews.models.Case; not imported, because models reads this module for Case.kind's choices.
Case = Any
KIND_MAX_LENGTH = 10  # Case.kind


@dataclass(frozen=True)
class SubjectKind:
    kind: str
    label: str
    plural: str
    # User ids who submitted the subject (they may not vote on it), from the case.
    submitters: Callable[[Case], Iterable[int]] | None = None


@dataclass(frozen=True)
class Panel:
    """A section of the case page: `template` rendered with `panel` = context(case, user)."""

    template: str
    context: Callable[[Case, Any], dict]


_kinds: dict[str, SubjectKind] = {}
_panels: dict[str, list[Panel]] = defaultdict(list)
_guards: dict[str, list[Callable[[Case], str | None]]] = defaultdict(list)
BUILT_IN = ("report", "tasks", "policy")


def register_kind(
    kind: str, *, label: str, plural: str = "", submitters: Callable[[Case], Iterable[int]] | None = None
) -> SubjectKind:
    """Register a case kind for subjects an upper app owns (at most 10 characters).
    Registering the same kind again replaces it (AppConfig.ready() may run twice in tests)."""
    if not kind or len(kind) > KIND_MAX_LENGTH or kind in BUILT_IN:
        raise ValueError(f"a case kind is 1 to {KIND_MAX_LENGTH} characters and not one of {', '.join(BUILT_IN)}")
    _kinds[kind] = SubjectKind(kind=kind, label=label, plural=plural or f"{label}s", submitters=submitters)
    return _kinds[kind]


def register_panel(kind: str, *, template: str, context: Callable[[Case, Any], dict]) -> None:
    """Show `template` on the page of every case of `kind` (any kind, built-in ones too)."""
    panels = _panels[kind]
    if not any(p.template == template for p in panels):
        panels.append(Panel(template=template, context=context))


def register_approval_guard(kind: str, guard: Callable[[Case], str | None]) -> None:
    """`guard(case)` returns a reason to refuse approving the case, or None. A refused
    approval is not recorded (vote_cast and case_decide raise NotAllowed with the
    reason), and the case page shows the reason on the approve button."""
    if guard not in _guards[kind]:
        _guards[kind].append(guard)


def unregister_kind(kind: str) -> None:
    """Forget a kind with its panels and guards (tests register kinds of their own)."""
    _kinds.pop(kind, None)
    _panels.pop(kind, None)
    _guards.pop(kind, None)


def is_subject_kind(kind: str) -> bool:
    return kind in _kinds


def kind_choices() -> list[tuple[str, str]]:
    """The registered kinds as (value, label): Case.kind's choices after the built-in ones."""
    return [(k.kind, k.label) for k in _kinds.values()]


def filter_choices() -> list[tuple[str, str]]:
    """The registered kinds as (value, plural label), for the queue's subject filter."""
    return [(k.kind, k.plural) for k in _kinds.values()]


def submitters_of(case: Case) -> set[int]:
    kind = _kinds.get(case.kind)
    if kind is None or kind.submitters is None:
        return set()
    return {i for i in kind.submitters(case) if i is not None}


def approval_refusal(case: Case) -> str | None:
    """The first registered guard's reason to refuse approving `case`, or None."""
    for guard in _guards.get(case.kind, ()):
        reason = guard(case)
        if reason:
            return reason
    return None


REVISION_REFUSAL = "the subject cannot be revised in place: approve or reject it"


def refused_choices(case: Case) -> dict[str, str]:
    """Vote choices the case does not take now, with the reason for each."""
    refused = {}
    if is_subject_kind(case.kind):
        refused["request_changes"] = REVISION_REFUSAL
    reason = approval_refusal(case)
    if reason:
        refused["approve"] = reason
    return refused


def panels_for(case: Case, user) -> list[dict]:
    return [{"template": p.template, "context": p.context(case, user)} for p in _panels.get(case.kind, ())]
