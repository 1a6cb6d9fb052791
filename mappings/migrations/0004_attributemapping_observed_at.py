"""AttributeMapping.observed_at, filled from what the IdPs have sent so far."""

from django.db import migrations, models
from django.db.models import Min


def fill_observed_at(apps, schema_editor):
    AttributeState = apps.get_model("scimsync", "AttributeState")
    AttributeMapping = apps.get_model("mappings", "AttributeMapping")
    first_seen = (
        AttributeState.objects.filter(idp_received_at__isnull=False, user__connection__isnull=False)
        .values("user__connection_id", "attribute").annotate(first=Min("idp_received_at"))
    )
    for row in first_seen.iterator():
        AttributeMapping.objects.filter(
            connection_id=row["user__connection_id"], attribute=row["attribute"]
        ).update(observed_at=row["first"])


class Migration(migrations.Migration):

    dependencies = [
        ("mappings", "0003_sync_schedule_and_request_log"),
        ("scimsync", "0007_syncrun_approve_permission"),
    ]

    operations = [
        migrations.AddField(
            model_name="attributemapping",
            name="observed_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(fill_observed_at, migrations.RunPython.noop),
    ]
