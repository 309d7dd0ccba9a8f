"""No foreign key constraint in the database on the key that registered a task
(`execution_tasks.submitted_by_id`), as there is none on its history rows' key and user
(0014, core.history.ActorHistory).

A deferred constraint checks each new row when its transaction commits: a
10,000-task backfill was 10,000 lookups of the same key at commit, about 115 ms of
PostgreSQL's CPU (bench/profile_bulk.py), and every registration one more. The key is
always the request's authenticated one; keys are never deleted (revoked instead: the
admin cannot delete one, tasks.admin), and deleting one through the ORM still clears its
tasks' key (Django's SET_NULL). The index on the column stays. Reversible (the
constraint is added back, checking the rows)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0015_tasks_case_held"),
    ]

    operations = [
        migrations.AlterField(
            model_name="executiontask",
            name="submitted_by",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="tasks",
                to="tasks.apikey",
            ),
        ),
    ]
