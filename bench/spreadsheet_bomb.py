#!/usr/bin/env python
"""A decompression bomb against every spreadsheet importer: time and memory until it is refused.

Builds two ~200 KB .xlsx files that inflate to --megabytes (default 200) MB: one huge inline
string in the sheet (``inline``), one huge shared string (``shared``) — the builders of
yiwang/core/tests/test_spreadsheet.py. Each is handed to every reading entry point, each run in a
fresh forked process so the figures do not mix:

  core        ``core.spreadsheet.sheet_open`` (the one reader)
  org         ``org.excel._read`` (the reading step of the staff / unit import, no database)
  notify      ``notify.spreadsheet.open_sheet`` (what ``job_create`` calls at upload)
  exchange    ``core.spreadsheet.sheet_check`` (what ``exchange.imports.import_start`` calls)

and, with --baseline, ``openpyxl.load_workbook(read_only=True)`` + reading every row, the path the
importers took before (expect ~10 s and > 1 GB). Reported per run: wall time to the refusal, the
peak of Python allocations (tracemalloc) and the growth of the process's peak RSS
(``ru_maxrss``). The target: refused in < 1 s with < 100 MB extra memory. Needs no database.

Run from the project directory:  .venv/bin/python bench/spreadsheet_bomb.py [--baseline]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yiwang.settings")

import django

django.setup()

from _common import machine_info, table, write_results  # noqa: E402

from yiwang.core import spreadsheet  # noqa: E402
from yiwang.core.tests.test_spreadsheet import bomb_xlsx  # noqa: E402
from yiwang.notify import spreadsheet as notify_sheet  # noqa: E402
from yiwang.org import excel  # noqa: E402


def _baseline(data: bytes) -> str:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    rows = sum(1 for _ in book.worksheets[0].iter_rows(values_only=True))
    return f"read {rows} rows (not refused)"


def _org(data: bytes) -> str:
    records, errors = excel._read(io.BytesIO(data), excel.PERSON_COLUMNS)
    return errors[0].message if errors else f"read {len(records)} rows (not refused)"


ENTRY_POINTS = {
    "core": lambda data: spreadsheet.sheet_open(io.BytesIO(data), "bomb.xlsx"),
    "org": _org,
    "notify": lambda data: notify_sheet.open_sheet(io.BytesIO(data), "bomb.xlsx"),
    "exchange": lambda data: spreadsheet.sheet_check(io.BytesIO(data), "bomb.xlsx"),
}


def _measure(name: str, data: bytes, queue) -> None:
    entry = _baseline if name == "baseline" else ENTRY_POINTS[name]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    try:
        outcome = entry(data)
        outcome = outcome if isinstance(outcome, str) else "opened (not refused)"
    except spreadsheet.SheetError as error:
        outcome = error.message
    seconds = time.perf_counter() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"seconds": seconds, "python_peak_mb": peak / 2**20,
               "rss_growth_mb": (rss_after - rss_before) / 1024, "outcome": outcome})  # fmt: skip


def run(name: str, data: bytes) -> dict:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(name, data, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200, help="uncompressed size of the bomb's string")
    parser.add_argument("--baseline", action="store_true", help="also time plain openpyxl reading (slow)")
    args = parser.parse_args()
    names = [*ENTRY_POINTS, *(["baseline"] if args.baseline else [])]
    results, rows, failures = [], [], 0
    for kind in ("inline", "shared"):
        data = bomb_xlsx(kind, size=args.megabytes << 20)
        for name in names:
            result = run(name, data) | {"bomb": kind, "entry": name, "file_kb": len(data) // 1024}
            refused = "疑似压缩炸弹" in result["outcome"]
            ok = name == "baseline" or (refused and result["seconds"] < 1 and result["rss_growth_mb"] < 100)
            failures += not ok
            results.append(result | {"ok": ok})
            figures = [f"{result['seconds']:.3f}", f"{result['python_peak_mb']:.1f}", f"{result['rss_growth_mb']:.1f}"]
            rows.append([kind, result["file_kb"], name, *figures, "yes" if refused else "no", "ok" if ok else "FAIL"])
    print(table(["bomb", "file KB", "entry", "seconds", "py peak MB", "RSS +MB", "refused", "target"], rows))
    path = write_results("spreadsheet_bomb", {"machine": machine_info(), "megabytes": args.megabytes,
                                              "results": results})  # fmt: skip
    print(f"written to {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
