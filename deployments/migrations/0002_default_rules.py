"""The default model-version rules (deployments/criteria.py): a version whose
evaluation lacks failure_rate is blocked; every other one is held for two approvals."""

from django.db import migrations

from deployments.criteria import DEFAULT_RULES


def install(apps, schema_editor):
    ModelRule = apps.get_model("deployments", "ModelRule")
    for spec in DEFAULT_RULES:
        ModelRule.objects.get_or_create(name=spec["name"], defaults=spec)


def uninstall(apps, schema_editor):
    ModelRule = apps.get_model("deployments", "ModelRule")
    ModelRule.objects.filter(name__in=[spec["name"] for spec in DEFAULT_RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("deployments", "0001_model_versions_and_rules")]

    operations = [migrations.RunPython(install, uninstall)]
