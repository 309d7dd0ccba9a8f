from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews and the execution gate"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_migrate, post_save

        from reviews.models import PolicyRule

        def rules_saved(sender, instance, **kwargs) -> None:
            from reviews.services import rules_changed as bump

            bump(why=f"rule {instance.name!r} saved")

        def rules_deleted(sender, instance, **kwargs) -> None:
            from reviews.services import rules_changed as bump

            bump(why=f"rule {instance.name!r} deleted")

        post_save.connect(rules_saved, sender=PolicyRule, dispatch_uid="reviews.rules_changed.save")
        post_delete.connect(rules_deleted, sender=PolicyRule, dispatch_uid="reviews.rules_changed.delete")
        # The one-row tables (the gate's state, the review settings) are installed by
        # migrations; after every migrate (and a test's flush) missing ones come back.
        post_migrate.connect(_install_singletons, sender=self, dispatch_uid="reviews.singletons_install")

        # The gate's rules are the first governed policy: every change is a committee case.
        from reviews import governed

        governed.register(PolicyRule, label="rule", check=_check_policy_rule, applied=_bump_rules_version)

        from django.contrib.auth.signals import user_logged_in

        from reviews.views import note_login_time

        user_logged_in.connect(note_login_time, dispatch_uid="reviews.note_login_time")

        from django.contrib.auth import get_user_model
        from django.db.models.signals import m2m_changed

        from reviews.receivers import committee_member_saved, committee_membership_changed

        user_model = get_user_model()
        m2m_changed.connect(
            committee_membership_changed, sender=user_model.groups.through, dispatch_uid="reviews.committee_changed"
        )
        post_save.connect(committee_member_saved, sender=user_model, dispatch_uid="reviews.committee_member_saved")


def _check_policy_rule(rule) -> None:
    """A rule the gate could not evaluate is refused (governed changes expect ValueError)."""
    from reviews import policy

    try:
        policy.Rule.from_model(rule)
    except policy.BrokenRule as exc:
        raise ValueError(str(exc)) from None


def _bump_rules_version() -> None:
    from reviews.services import rules_changed

    rules_changed(why="a policy change to the gate's rules applied")


def _install_singletons(sender, apps=None, **kwargs) -> None:
    from reviews.services.gate import singletons_install

    singletons_install(apps=apps)
