from django.apps import AppConfig
from django.db.models.signals import post_migrate

# Operators use the admin: they may view every FSAR model and manage API keys.
OPERATOR_APPS = ("tasks", "reviews", "billing", "deployments", "assurance", "indicators")
OPERATOR_EXTRA_PERMISSIONS = (
    "tasks.add_apikey",
    "tasks.change_apikey",
    # The gate's policy is edited by operators in the admin; failed callbacks are retried there.
    "reviews.add_policyrule",
    "reviews.change_policyrule",
    "reviews.add_callbackendpoint",
    "reviews.change_callbackendpoint",
    "reviews.change_callbackdelivery",
    # Model-version criteria are policy too: edited in the admin, every change a committee case.
    "deployments.add_modelrule",
    "deployments.change_modelrule",
    # Audit suites: a change to a required one is a committee case (assurance/admin.py).
    "assurance.add_auditsuite",
    "assurance.change_auditsuite",
    # Operators decide whether committee decisions require two-factor.
    "reviews.change_reviewsettings",
    # Operators set up who is billed for what.
    "billing.add_customer",
    "billing.change_customer",
    "billing.add_serviceoffering",
    "billing.change_serviceoffering",
    "billing.add_offeringtasktype",
    "billing.change_offeringtasktype",
    "billing.delete_offeringtasktype",
)


def sync_role_permissions(sender, using="default", **kwargs) -> None:
    """Make sure the role groups exist and give Operators view permission on every model of the FSAR apps."""
    from django.contrib.auth.models import Group, Permission
    from django.db import connections

    from core.roles import ALL_ROLES, OPERATORS

    tables = set(connections[using].introspection.table_names())
    if not {"auth_group", "auth_permission", "django_content_type"} <= tables:
        return  # a partial migrate (e.g. one app to an old state): nothing to sync yet
    # The groups come from migration fsar.0001_roles; a flush (tests) removes
    # them, and the post_migrate after it brings them back here.
    for role in ALL_ROLES:
        Group.objects.using(using).get_or_create(name=role)
    group = Group.objects.using(using).get(name=OPERATORS)
    perms = set(
        Permission.objects.using(using).filter(content_type__app_label__in=OPERATOR_APPS, codename__startswith="view_")
    )
    for dotted in OPERATOR_EXTRA_PERMISSIONS:
        app_label, codename = dotted.split(".")
        perms.update(Permission.objects.using(using).filter(content_type__app_label=app_label, codename=codename))
    group.permissions.add(*perms)


class FsarConfig(AppConfig):
    name = "fsar"
    verbose_name = "FSAR"

    def ready(self) -> None:
        post_migrate.connect(sync_role_permissions, dispatch_uid="fsar.sync_role_permissions")
        from fsar.health import forget_schema_state

        post_migrate.connect(forget_schema_state, dispatch_uid="fsar.forget_schema_state")
        from fsar import checks  # noqa: F401  (registers system checks)
