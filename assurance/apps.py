from django.apps import AppConfig


class AssuranceConfig(AppConfig):
    name = "assurance"
    verbose_name = "Adversarial audits"

    def ready(self) -> None:
        from assurance import receivers, services
        from assurance.criteria import check_suite
        from assurance.models import AuditSuite
        from assurance.signals import version_demoted
        from reviews import governed, subjects
        from reviews.signals import case_changed

        # An inconclusive run goes to the committee as a case of its own kind.
        subjects.register_kind(
            services.CASE_KIND, label="Audit run", plural="Audit runs", submitters=services.case_submitters
        )
        subjects.register_panel(services.CASE_KIND, template="assurance/_run_case_panel.html", context=_run_panel)
        # A model version's case shows its audits, and is not approved before every required suite passed.
        subjects.register_panel(
            services.MODEL_CASE_KIND, template="assurance/_model_case_panel.html", context=_model_panel
        )
        subjects.register_approval_guard(services.MODEL_CASE_KIND, services.model_approval_refusal)
        case_changed.connect(services.on_case_changed, dispatch_uid="assurance.on_case_changed")
        # A demoted candidate's rollout is aborted in the same transaction (rollouts abort on demotion).
        version_demoted.connect(receivers.abort_rollout_of_demoted_version, dispatch_uid="assurance.abort_rollout")
        # Suites are policy: a change to a required one is a committee case (admin.py).
        governed.register(AuditSuite, label="audit suite", check=check_suite, applied=services.suites_changed)


def _run_panel(case, user) -> dict:
    from assurance import views

    return views.run_case_panel(case=case, user=user)


def _model_panel(case, user) -> dict:
    from assurance import views

    return views.model_case_panel(case=case, user=user)
