"""The seed report's fix: `ALTER TABLE execution_tasks ADD COLUMN ai_model TEXT`.

Nullable with no default, so existing rows read NULL and PostgreSQL only
changes the catalogue (no table rewrite, no long lock).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tasks", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="executiontask",
            name="ai_model",
            field=models.TextField(blank=True, null=True),
        ),
    ]
