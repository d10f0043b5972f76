import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Step 3: the file, its name and size now live on ``core.Attachment`` only."""

    dependencies = [("workflow", "0003_attachment_files_to_core")]

    operations = [
        migrations.RemoveField(model_name="attachment", name="file"),
        migrations.RemoveField(model_name="attachment", name="name"),
        migrations.RemoveField(model_name="attachment", name="size"),
        migrations.AlterField(
            model_name="attachment",
            name="stored",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="core.attachment"
            ),
        ),
    ]
