from django.db import migrations

from yiwang.core.search import index_operations


def create_roles(apps, schema_editor):
    from yiwang.org.services import ROLE_DEFINITIONS

    Role = apps.get_model("org", "Role")
    for code, name, scope, public, description in ROLE_DEFINITIONS:
        Role.objects.update_or_create(
            code=code, defaults={"name": name, "scope": scope, "is_public": public, "description": description}
        )


class Migration(migrations.Migration):
    dependencies = [("org", "0001_initial")]

    operations = [
        migrations.RunPython(create_roles, migrations.RunPython.noop),
        *index_operations("org_unit"),
        *index_operations("org_user"),
    ]
