"""Governed changes: policy that lives in an app above reviews goes through the
committee's policy-change review exactly as the gate's own rules do.

The app owns its policy table (deployments' model-version rules, assurance's
required suites) and how it is evaluated; reviews owns the review. The app
registers the model in its AppConfig.ready():

    from reviews import governed
    governed.register(ModelRule, label="model-version rule",
                      check=check_rule,        # raise ValueError(why) for a row that could not be used
                      applied=rules_changed)   # after a change is written (bump a cache version)

and its admin uses reviews.admin.GovernedAdmin / GovernedForm. Then every
save or delete in the admin is a `PolicyChange` (target "app_label.model")
with before/proposed/diff and a committee case of kind `policy`; only its
approval writes the row (with history, the approver as the acting user), and
a superuser's emergency change applies at once with a retrospective case.
`reviews.services.policy_change_propose(..., target="deployments.modelrule")`
does the same from code. reviews registers its own PolicyRule the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

POLICY_RULE = "reviews.policyrule"


@dataclass(frozen=True)
class Governed:
    target: str  # the model's label, "app_label.modelname"
    model: type
    label: str  # what a person calls one row, e.g. "model-version rule"
    fields: tuple[str, ...]  # what a change may set: every concrete field but the primary key
    check: Callable[[Any], None] | None = None
    applied: Callable[[], None] | None = None

    def values(self, obj) -> dict:
        """The row's values as a PolicyChange stores them (JSON round-tripped, so they compare equal later)."""
        return json.loads(json.dumps({name: getattr(obj, name) for name in self.fields}, default=str))

    def name_of(self, obj) -> str:
        return str(getattr(obj, "name", "") or obj)[:100]


_registry: dict[str, Governed] = {}


def register(model, *, label: str, check: Callable[[Any], None] | None = None, applied=None) -> Governed:
    """Put `model`'s rows under the committee's policy-change review (see the module doc).
    `check(candidate)` raises ValueError with a reason a person can act on when the
    proposed row could not be used; `applied()` runs after a change is written."""
    target = model._meta.label_lower
    fields = tuple(f.name for f in model._meta.concrete_fields if not f.primary_key)
    _registry[target] = Governed(target=target, model=model, label=label, fields=fields, check=check, applied=applied)
    return _registry[target]


def unregister(target: str) -> None:
    """Forget a governed model (tests register models of their own)."""
    _registry.pop(target, None)


def get(target: str) -> Governed | None:
    return _registry.get(target)


def target_of(model) -> str:
    return model._meta.label_lower
