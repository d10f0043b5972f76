"""``manage.py exchange_generate``: fill the base registries with synthetic data (demo, benchmarks)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from yiwang.exchange import imports


class Command(BaseCommand):
    help = "生成基础库测试数据（人口、法人、地址、经济指标），同一种子结果相同；已存在的记录跳过。"

    def add_arguments(self, parser):
        parser.add_argument("--residents", type=int, default=0, help="人口条数")
        parser.add_argument("--entities", type=int, default=0, help="法人条数")
        parser.add_argument("--places", type=int, default=0, help="地址条数")
        parser.add_argument("--indicators", action="store_true", help="生成 2015—2025 年度、季度经济指标")
        parser.add_argument("--seed", type=int, default=1, help="随机种子（默认 1）")
        parser.add_argument("--batch", type=int, default=20_000, help="每批写入行数（默认 20000）")
        parser.add_argument("--log-changes", action="store_true", help="同时写变更记录（供订阅方读取）")

    def handle(self, *args, **options):
        counts = {k: options[k] for k in ("residents", "entities", "places")}
        if any(n < 0 for n in counts.values()) or options["batch"] < 1:
            raise CommandError("条数不能为负，批大小至少为 1。")
        if not any(counts.values()) and not options["indicators"]:
            raise CommandError("请至少指定 --residents、--entities、--places 或 --indicators 之一。")
        common = {"seed": options["seed"], "log_changes": options["log_changes"]}
        jobs = [
            ("人口", counts["residents"], imports.residents_generate),
            ("法人", counts["entities"], imports.entities_generate),
            ("地址", counts["places"], imports.places_generate),
        ]
        for label, count, generate in jobs:
            if count:
                self._run(label, count, generate, batch=options["batch"], **common)
        if options["indicators"]:
            started = time.perf_counter()
            inserted = imports.indicators_generate(**common)
            self.stdout.write(f"经济指标：新增 {inserted} 条，用时 {time.perf_counter() - started:.1f} 秒")

    def _run(self, label: str, count: int, generate, **kwargs) -> None:
        started = time.perf_counter()
        last = [started, 0]

        def progress(done: int) -> None:
            now = time.perf_counter()
            if (now - last[0] >= 2 or done == count) and done != last[1]:
                last[:] = [now, done]
                rate = done / max(now - started, 1e-9)
                self.stdout.write(f"  {label}：已生成 {done:,} / {count:,} 行（{rate:,.0f} 行/秒）")

        inserted = generate(count=count, progress=progress, **kwargs)
        seconds = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"{label}：新增 {inserted:,} 条（共生成 {count:,} 行），用时 {seconds:.1f} 秒，"
                f"{count / max(seconds, 1e-9):,.0f} 行/秒"
            )
        )
