"""The default policy rules (reviews/defaults.py) and the gate's one state row."""

import uuid

from django.db import migrations

from reviews.defaults import DEFAULT_RULES


def install(apps, schema_editor):
    PolicyRule = apps.get_model("reviews", "PolicyRule")
    GateState = apps.get_model("reviews", "GateState")
    for spec in DEFAULT_RULES:
        PolicyRule.objects.get_or_create(name=spec["name"], defaults=spec)
    GateState.objects.get_or_create(pk=1, defaults={"rules_version": uuid.uuid4().hex})


def uninstall(apps, schema_editor):
    PolicyRule = apps.get_model("reviews", "PolicyRule")
    PolicyRule.objects.filter(name__in=[spec["name"] for spec in DEFAULT_RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("reviews", "0001_reports_rules_cases_gate")]

    operations = [migrations.RunPython(install, uninstall)]
