"""The `execution_tasks` table exactly as the existing AI operation created it.

Nothing else belongs here: `migrate --fake-initial` adopts a legacy database by
finding this table, so 0001 must create only it. FSAR's additions follow in
later migrations.
"""

import django.db.models.functions.datetime
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="ExecutionTask",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("external_id", models.CharField(max_length=200, unique=True)),
                ("task_type", models.CharField(max_length=40)),
                ("status", models.CharField(max_length=20)),
                ("payload", models.JSONField(db_default=models.Value({}, models.JSONField()), default=dict)),
                (
                    "created_at",
                    models.DateTimeField(
                        db_default=django.db.models.functions.datetime.Now(),
                        default=django.utils.timezone.now,
                    ),
                ),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("duration_ms", models.BigIntegerField(blank=True, null=True)),
                ("cost_micros", models.BigIntegerField(blank=True, null=True)),
                ("tokens", models.IntegerField(blank=True, null=True)),
                ("error", models.TextField(blank=True, db_default="", default="")),
            ],
            options={"db_table": "execution_tasks"},
        ),
    ]
