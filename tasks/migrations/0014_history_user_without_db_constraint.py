"""No foreign key constraint in the database on the user of a task's history rows, as
there is none on their key (ActorHistory.history_api_key).

A deferred constraint checks each new row when its transaction commits: a
10,000-task backfill's 10,000 history rows were 10,000 lookups of the same user at
commit, about 115 ms of PostgreSQL's CPU, a tenth of the request's database time on
the benchmark's million-task table (bench/profile_bulk.py). Every history row is written
by the application (core/history.py, django-simple-history) with the acting user;
deleting a user still sets its history rows' user to NULL (Django's SET_NULL, done by
the ORM, not by the constraint). Reversible (the constraint is added back)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0013_rollup_fillfactor"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="historicalexecutiontask",
            name="history_user",
            field=models.ForeignKey(
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
