"""The operators' review settings' one row (pk=1), so that reading it never writes
(selectors only read). The gate's state row is installed by 0002; after every
migrate, reviews' post_migrate receiver (services.gate.singletons_install) puts
back either row if it is missing."""

from django.db import migrations


def install(apps, schema_editor):
    ReviewSettings = apps.get_model("reviews", "ReviewSettings")
    ReviewSettings.objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("reviews", "0009_case_sla_hours")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
