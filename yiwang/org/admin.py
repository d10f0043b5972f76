from django.contrib import admin

from .models import ApiKey, ConsumerSystem, Delegation, Post, Role, Unit, User


class ReadOnlyAdmin(admin.ModelAdmin):
    """Admin is for looking only: every write goes through org.services (audited)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Unit)
class UnitAdmin(ReadOnlyAdmin):
    list_display = ["name", "code", "kind", "status", "parent"]
    list_filter = ["kind", "status"]
    search_fields = ["name", "code"]
    readonly_fields = ["path", "depth"]


@admin.register(User)
class UserAdmin(ReadOnlyAdmin):
    list_display = ["username", "full_name", "mobile", "is_active", "is_system"]
    search_fields = ["username", "full_name", "mobile"]
    exclude = ["password", "user_permissions", "groups"]


for model in (Role, Post, Delegation, ConsumerSystem):
    admin.site.register(model, ReadOnlyAdmin)


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = ["system", "name", "kind", "prefix", "revoked_at", "last_used_at"]
    exclude = ["key_hash"]
