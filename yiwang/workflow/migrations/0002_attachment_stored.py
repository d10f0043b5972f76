import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Step 1 of moving action files to ``core.Attachment``: the link (filled by 0003)."""

    dependencies = [
        ("core", "0003_attachment"),
        ("workflow", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="attachment",
            name="stored",
            field=models.OneToOneField(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="core.attachment"
            ),
        ),
    ]
