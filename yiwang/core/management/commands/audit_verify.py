from django.core.management.base import BaseCommand, CommandError

from yiwang.core.audit import audit_chain, audit_verify
from yiwang.core.models import AuditEntry


class Command(BaseCommand):
    help = "链接尚未入链的审计记录，然后校验整条哈希链；发现篡改时指出第一个断点并以非零状态退出。"

    def add_arguments(self, parser):
        parser.add_argument("--no-chain", action="store_true", help="只校验，不先链接新记录")

    def handle(self, *args, **options):
        if not options["no_chain"]:
            linked = audit_chain()
            if linked:
                self.stdout.write(f"新入链 {linked} 条")
        broken = audit_verify()
        if broken:
            raise CommandError(f"审计链断裂：{broken}")
        total = AuditEntry.objects.count()
        self.stdout.write(self.style.SUCCESS(f"审计链完整：共 {total} 条记录"))
