from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Model versions and deployments"

    def ready(self) -> None:
        from deployments import services
        from deployments.models import ModelRule
        from reviews import governed, subjects
        from reviews.signals import case_changed

        # Model versions are reviewed as committee cases of their own kind.
        subjects.register_kind(
            services.CASE_KIND,
            label="Model version",
            plural="Model versions",
            submitters=services.case_submitters,
        )
        subjects.register_panel(services.CASE_KIND, template="deployments/_case_panel.html", context=_panel)
        subjects.register_approval_guard(services.CASE_KIND, services.approval_refusal)
        # Inconclusive rollout analyses and failed rollback drills go to the committee.
        from deployments import drills

        subjects.register_kind(drills.CASE_KIND, label="Rollout", plural="Rollouts and drills")
        case_changed.connect(services.on_case_changed, dispatch_uid="deployments.on_case_changed")

        # The criteria are policy: every change is a committee case, as for task rules.
        from deployments.criteria import check_rule
        from reviews.services import rules_changed

        governed.register(
            ModelRule,
            label="model-version rule",
            check=check_rule,
            applied=lambda: rules_changed(why="a policy change to the model-version rules applied"),
        )


def _panel(case, user) -> dict:
    from deployments import selectors

    return selectors.case_panel(case=case, user=user)
