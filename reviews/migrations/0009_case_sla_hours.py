"""Each case keeps its SLA (hours to decide), so that reopening, escalating or
revoking it gives it its own time again, not a fixed 72 hours.

Existing cases get their rule's SLA, policy-change cases REVIEWS_POLICY_CHANGE_SLA_HOURS,
and the others 72 hours (what a reopening gave them until now). The history
rows keep the default: they record what was, and the column did not exist."""

from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def fill(apps, schema_editor):
    Case = apps.get_model("reviews", "Case")
    PolicyRule = apps.get_model("reviews", "PolicyRule")
    rule_sla = PolicyRule.objects.filter(pk=OuterRef("rule_id")).values("sla_hours")[:1]
    # A policy-change case names the rule it changes, not a rule that opened it.
    Case.objects.filter(rule__isnull=False).exclude(kind="policy").update(sla_hours=Subquery(rule_sla))
    Case.objects.filter(kind="policy").update(
        sla_hours=getattr(settings, "REVIEWS_POLICY_CHANGE_SLA_HOURS", 72)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0008_governed_policy_changes"),
    ]

    operations = [
        migrations.AddField(
            model_name="case",
            name="sla_hours",
            field=models.PositiveIntegerField(
                default=72,
                help_text="Hours the committee has to decide, fixed when the case opens (its rule's); a reopened, escalated or revoked case is due this long after that.",
            ),
        ),
        migrations.AddField(
            model_name="historicalcase",
            name="sla_hours",
            field=models.PositiveIntegerField(
                default=72,
                help_text="Hours the committee has to decide, fixed when the case opens (its rule's); a reopened, escalated or revoked case is due this long after that.",
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
