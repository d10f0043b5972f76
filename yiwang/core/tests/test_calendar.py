"""Working days on the Chinese calendar (holidays and 调休 make-up working days).

Expected dates come from the State Council notices as carried by the installed
``chinese_calendar`` package (constants.py, version 1.11.0, data up to 2026):

* 2024 Spring Festival: 02-10..02-17 off; 02-04 (Sun) and 02-18 (Sun) working.
* 2025 National Day + Mid-Autumn: 10-01..10-08 off; 09-28 (Sun) and 10-11 (Sat) working.
* 2026 New Year: 01-01..01-03 off; 01-04 (Sun) working.
* 2026 Spring Festival: 02-15..02-23 off; 02-14 (Sat) and 02-28 (Sat) working.
* 2026 Mid-Autumn 09-25..09-27 off; National Day 10-01..10-07 off; 09-20 (Sun) and 10-10 (Sat) working.

``is_working_day`` reads ``CalendarOverride`` rows, so every test here needs the database.
"""

from __future__ import annotations

import datetime as dt
import logging

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yiwang.core import calendar, calendar_services
from yiwang.core.calendar import add_working_days, is_working_day, working_days_between
from yiwang.core.calendar_services import NoticeRow
from yiwang.core.models import AuditEntry, CalendarOverride

D = dt.date.fromisoformat

pytestmark = pytest.mark.django_db

property_settings = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
dates_2024_2026 = st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2026, 12, 31))


@pytest.fixture(autouse=True)
def _fresh_override_cache():
    # Overrides are cached per process; a row rolled back in another test must not leak in.
    calendar.clear_cache()
    yield
    calendar.clear_cache()


class TestIsWorkingDay:
    @pytest.mark.parametrize(
        "day",
        [
            "2024-02-04",
            "2024-02-18",
            "2025-09-28",
            "2025-10-11",
            "2026-01-04",
            "2026-02-14",
            "2026-02-28",
            "2026-09-20",
            "2026-10-10",
        ],
    )
    def test_make_up_weekend_days_are_working_days(self, day):
        assert D(day).weekday() >= 5
        assert is_working_day(D(day))

    @pytest.mark.parametrize(
        "day",
        [
            "2024-02-12",
            "2024-02-16",
            "2025-10-01",
            "2025-10-06",
            "2025-10-08",
            "2026-01-02",
            "2026-02-20",
            "2026-02-23",
            "2026-09-25",
            "2026-10-07",
        ],
    )
    def test_weekday_holidays_are_not_working_days(self, day):
        assert D(day).weekday() < 5
        assert not is_working_day(D(day))

    def test_accepts_a_datetime(self):
        assert not is_working_day(dt.datetime(2025, 10, 1, 9, 30))
        assert is_working_day(dt.datetime(2025, 10, 11, 9, 30))


class TestAddWorkingDays:
    @pytest.mark.parametrize(
        ("start", "days", "expected"),
        [
            # 2024 Spring Festival
            ("2024-02-02", 1, "2024-02-04"),  # Sat 02-03 off, Sun 02-04 make-up
            ("2024-02-08", 1, "2024-02-09"),
            ("2024-02-09", 1, "2024-02-18"),  # 02-10..17 off, Sun 02-18 make-up
            ("2024-02-09", 2, "2024-02-19"),
            ("2024-02-12", 1, "2024-02-18"),  # received during the holiday
            ("2024-02-18", -1, "2024-02-09"),
            ("2024-02-05", -1, "2024-02-04"),
            ("2024-02-05", -2, "2024-02-02"),
            # 2025 National Day + Mid-Autumn
            ("2025-09-26", 1, "2025-09-28"),  # Sat 09-27 off, Sun 09-28 make-up
            ("2025-09-30", 1, "2025-10-09"),
            ("2025-09-30", 3, "2025-10-11"),  # Sat 10-11 make-up
            ("2025-09-30", 4, "2025-10-13"),
            ("2025-10-09", -1, "2025-09-30"),
            ("2025-10-09", -3, "2025-09-28"),
            ("2025-10-13", -1, "2025-10-11"),
            # 2026 New Year across the year boundary
            ("2025-12-31", 1, "2026-01-04"),
            ("2026-01-04", -1, "2025-12-31"),
            # 2026 Spring Festival
            ("2026-02-13", 1, "2026-02-14"),
            ("2026-02-14", 1, "2026-02-24"),
            ("2026-02-13", 6, "2026-02-28"),
            ("2026-02-24", -1, "2026-02-14"),
            # 2026 Mid-Autumn and National Day
            ("2026-09-18", 1, "2026-09-20"),
            ("2026-09-24", 1, "2026-09-28"),
            ("2026-09-30", 1, "2026-10-08"),
            ("2026-09-30", 3, "2026-10-10"),
            ("2026-10-08", -1, "2026-09-30"),
        ],
    )
    def test_real_holidays_and_make_up_days(self, start, days, expected):
        assert add_working_days(D(start), days) == D(expected)

    def test_a_ten_working_day_limit_over_the_2025_national_day(self):
        # Received Tue 09-30: 10-09, 10, 11(Sat), 13, 14, 15, 16, 17, 20, 21.
        assert add_working_days(D("2025-09-30"), 10) == D("2025-10-21")

    @pytest.mark.parametrize("day", ["2024-02-09", "2025-09-28", "2026-02-14", "2025-10-11"])
    def test_zero_days_on_a_working_day_is_the_day_itself(self, day):
        assert add_working_days(D(day), 0) == D(day)

    @pytest.mark.parametrize(
        ("day", "expected"),
        [
            ("2024-02-10", "2024-02-18"),
            ("2024-02-03", "2024-02-04"),
            ("2025-10-01", "2025-10-09"),
            ("2025-10-12", "2025-10-13"),
            ("2026-02-15", "2026-02-24"),
        ],
    )
    def test_zero_days_on_a_day_off_is_the_next_working_day(self, day, expected):
        assert add_working_days(D(day), 0) == D(expected)

    def test_datetime_start_gives_a_date(self):
        result = add_working_days(dt.datetime(2025, 9, 30, 17, 45), 1)
        assert result == D("2025-10-09")
        assert type(result) is dt.date

    @property_settings
    @given(start=dates_2024_2026, days=st.integers(min_value=1, max_value=60))
    def test_positive_result_is_always_a_working_day(self, start, days):
        result = add_working_days(start, days)
        assert result > start
        assert is_working_day(result)

    @property_settings
    @given(start=dates_2024_2026, days=st.integers(min_value=1, max_value=60))
    def test_negative_result_is_always_a_working_day_before_start(self, start, days):
        result = add_working_days(start, -days)
        assert result < start
        assert is_working_day(result)


class TestWorkingDaysBetween:
    @pytest.mark.parametrize(
        ("start", "end", "expected"),
        [
            ("2024-02-09", "2024-02-17", 0),  # the whole holiday
            ("2024-02-09", "2024-02-18", 1),
            ("2024-02-09", "2024-02-19", 2),
            ("2024-02-01", "2024-02-29", 17),  # 2, 4(Sun), 5-9, 18(Sun), 19-23, 26-29
            ("2025-09-30", "2025-10-08", 0),
            ("2025-09-30", "2025-10-12", 3),  # 09, 10, 11(Sat)
            ("2025-09-26", "2025-09-28", 1),  # Sun 09-28 only
            ("2026-02-13", "2026-02-28", 6),  # 14(Sat), 24, 25, 26, 27, 28(Sat)
            ("2026-09-30", "2026-10-12", 4),  # 08, 09, 10(Sat), 12
            ("2025-12-31", "2026-01-04", 1),
        ],
    )
    def test_real_holidays_and_make_up_days(self, start, end, expected):
        assert working_days_between(D(start), D(end)) == expected

    def test_same_day_is_zero(self):
        assert working_days_between(D("2025-10-11"), D("2025-10-11")) == 0
        assert working_days_between(D("2025-10-01"), D("2025-10-01")) == 0

    def test_end_before_start_is_negative(self):
        # -(working days after 09-28 up to and including 10-09) = -(09-29, 09-30, 10-09)
        assert working_days_between(D("2025-10-09"), D("2025-09-28")) == -3
        assert working_days_between(D("2024-02-19"), D("2024-02-09")) == -2

    def test_accepts_datetimes(self):
        assert working_days_between(dt.datetime(2025, 9, 30, 23, 59), dt.datetime(2025, 10, 9, 0, 1)) == 1

    @property_settings
    @given(start=dates_2024_2026, days=st.integers(min_value=0, max_value=60))
    def test_inverse_of_add_working_days_from_a_working_day(self, start, days):
        while not is_working_day(start):
            start += dt.timedelta(days=1)
        assert working_days_between(start, add_working_days(start, days)) == days

    @property_settings
    @given(start=dates_2024_2026, days=st.integers(min_value=1, max_value=60))
    def test_inverse_backwards_from_a_working_day(self, start, days):
        while not is_working_day(start):
            start += dt.timedelta(days=1)
        assert working_days_between(start, add_working_days(start, -days)) == -days

    @property_settings
    @given(start=dates_2024_2026, days=st.integers(min_value=1, max_value=60))
    def test_inverse_forwards_from_any_day(self, start, days):
        # The day of receipt never counts, so a day off as start works too for n > 0.
        assert working_days_between(start, add_working_days(start, days)) == days

    @property_settings
    @given(a=dates_2024_2026, b=dates_2024_2026)
    def test_antisymmetric(self, a, b):
        assert working_days_between(a, b) == -working_days_between(b, a)


class TestCalendarOverride:
    def test_override_makes_a_package_holiday_a_working_day(self):
        assert add_working_days(D("2025-09-30"), 1) == D("2025-10-09")
        CalendarOverride.objects.create(day=D("2025-10-08"), is_working_day=True, name="测试：改为上班")
        calendar.clear_cache()
        assert is_working_day(D("2025-10-08"))
        assert add_working_days(D("2025-09-30"), 1) == D("2025-10-08")
        assert working_days_between(D("2025-09-30"), D("2025-10-09")) == 2

    def test_override_makes_a_package_working_day_a_holiday(self):
        CalendarOverride.objects.create(day=D("2024-02-18"), is_working_day=False, name="测试：取消调休")
        calendar.clear_cache()
        assert add_working_days(D("2024-02-09"), 1) == D("2024-02-19")

    def test_overrides_for_a_year_the_package_does_not_know(self):
        # 2030-01-01 is a Tuesday; 2030-01-05 a Saturday.
        CalendarOverride.objects.create(day=D("2030-01-01"), is_working_day=False, name="元旦")
        CalendarOverride.objects.create(day=D("2030-01-05"), is_working_day=True, name="调休上班")
        calendar.clear_cache()
        assert add_working_days(D("2029-12-31"), 1) == D("2030-01-02")
        assert add_working_days(D("2030-01-04"), 1) == D("2030-01-05")
        assert working_days_between(D("2029-12-31"), D("2030-01-07")) == 5  # 02, 03, 04, 05(Sat), 07

    def test_clear_cache_is_needed_to_see_a_new_override(self):
        assert is_working_day(D("2025-10-08")) is False
        CalendarOverride.objects.create(day=D("2025-10-08"), is_working_day=True)
        calendar.clear_cache()
        assert is_working_day(D("2025-10-08")) is True


class TestUnknownYearFallback:
    def test_2030_is_monday_to_friday(self):
        assert add_working_days(D("2030-01-04"), 1) == D("2030-01-07")  # Fri -> Mon
        assert add_working_days(D("2030-01-05"), 0) == D("2030-01-07")  # Sat -> Mon
        assert add_working_days(D("2030-01-07"), -1) == D("2030-01-04")
        assert working_days_between(D("2030-01-01"), D("2030-01-31")) == 22
        # 2030-10-01 is a Tuesday: no National Day holiday without data or overrides.
        assert is_working_day(D("2030-10-01"))

    def test_unknown_year_logs_a_warning_once(self, caplog, monkeypatch):
        monkeypatch.setattr(calendar, "_warned_years", set())
        with caplog.at_level(logging.WARNING, logger="yiwang.core.calendar"):
            assert is_working_day(D("2030-03-04"))
            assert not is_working_day(D("2030-03-09"))
        warnings = [r for r in caplog.records if r.name == "yiwang.core.calendar"]
        assert len(warnings) == 1
        assert "2030" in warnings[0].getMessage()

    def test_span_into_an_unknown_year(self):
        # 2026-12-31 is a Thursday; 2027 is not in the package data.
        assert add_working_days(D("2026-12-31"), 1) == D("2027-01-01")


# --- entering a year's notice (calendar_services, the page, the banner) -------------------------
# The 2030 arrangement below is made-up test data, not a State Council notice.


def notice_2030():
    return [
        NoticeRow(D("2030-01-01"), None, False, "元旦（测试）"),
        NoticeRow(D("2030-02-02"), D("2030-02-08"), False, "春节（测试）"),
        NoticeRow(D("2030-01-26"), None, True, "春节调休上班（测试）"),
        NoticeRow(D("2030-02-09"), None, True, "春节调休上班（测试）"),
    ]


def messages_of(excinfo) -> str:
    return " ".join(excinfo.value.messages)


class TestCoverage:
    def test_package_years_are_covered_later_ones_not(self):
        assert calendar.PACKAGE_YEARS[-1] == 2026
        assert calendar.is_year_covered(2026) and calendar.is_year_covered(2004)
        assert not calendar.is_year_covered(2027)
        assert 2027 not in calendar.covered_years()

    def test_an_entered_year_is_covered(self, admin):
        calendar_services.calendar_year_save(actor=admin, year=2030, rows=notice_2030())
        assert calendar.is_year_covered(2030) and 2030 in calendar.covered_years()

    def test_special_days_carry_chinese_names(self):
        days = {day: (working, name) for day, working, name, _source in calendar.special_days(2026)}
        assert days[D("2026-10-01")] == (False, "国庆节")
        assert days[D("2026-10-10")][0] is True

    @pytest.mark.parametrize(
        ("today", "expected"),
        [("2026-10-31", None), ("2026-11-01", 2027), ("2026-12-31", 2027), ("2025-11-15", None)],
    )
    def test_next_year_missing_from_1_november(self, today, expected):
        assert calendar.missing_next_year(D(today)) == expected


class TestYearSave:
    def test_saves_ranges_day_by_day_and_is_audited(self, admin):
        assert is_working_day(D("2030-02-04"))  # Monday, before: Monday–Friday
        saved = calendar_services.calendar_year_save(actor=admin, year=2030, rows=notice_2030())
        assert saved == 10
        assert not is_working_day(D("2030-01-01"))
        assert not is_working_day(D("2030-02-04")) and not is_working_day(D("2030-02-08"))
        assert is_working_day(D("2030-01-26")) and is_working_day(D("2030-02-09"))  # Saturdays
        assert add_working_days(D("2030-01-31"), 2) == D("2030-02-09")
        entry = AuditEntry.objects.get(action="core.calendar.year_save")
        assert entry.object_id == "2030" and entry.actor_id == admin.pk
        assert "2030-02-02 春节（测试）" in entry.changes["holidays"][1]
        assert "2030-01-26" in entry.changes["workdays"][1]

    def test_saving_again_replaces_the_year(self, admin):
        calendar_services.calendar_year_save(actor=admin, year=2030, rows=notice_2030())
        calendar_services.calendar_year_save(
            actor=admin, year=2030, rows=[NoticeRow(D("2030-05-01"), None, False, "劳动节")]
        )
        assert CalendarOverride.objects.filter(day__year=2030).count() == 1
        assert is_working_day(D("2030-02-04")) and not is_working_day(D("2030-05-01"))

    def test_other_years_are_untouched(self, admin):
        CalendarOverride.objects.create(day=D("2031-01-01"), is_working_day=False, name="元旦")
        calendar_services.calendar_year_save(actor=admin, year=2030, rows=notice_2030())
        assert CalendarOverride.objects.filter(day=D("2031-01-01")).exists()

    def test_only_platform_admins(self, alice):
        with pytest.raises(PermissionDenied):
            calendar_services.calendar_year_save(actor=alice, year=2030, rows=notice_2030())
        assert not CalendarOverride.objects.exists()

    def test_signal_carries_the_year_as_it_was(self, admin):
        heard = []

        def receiver(sender, year, previous, **kwargs):
            heard.append((year, previous, is_working_day(D("2030-02-04"))))

        calendar.calendar_changed.connect(receiver)
        try:
            calendar_services.calendar_year_save(actor=admin, year=2030, rows=notice_2030())
        finally:
            calendar.calendar_changed.disconnect(receiver)
        ((year, previous, now_working),) = heard
        assert year == 2030 and len(previous) == 365
        assert previous[D("2030-02-04")] is True and now_working is False  # receivers see the new calendar
        assert previous[D("2030-01-26")] is False

    @pytest.mark.parametrize(
        ("rows", "message"),
        [
            ([NoticeRow(D("2031-01-01"), None, False, "元旦")], "日期必须在 2030 年内"),
            ([NoticeRow(D("2030-12-31"), D("2031-01-02"), False, "元旦")], "日期必须在 2030 年内"),
            ([NoticeRow(D("2030-02-08"), D("2030-02-02"), False, "春节")], "结束日期不能早于开始日期"),
            (
                [
                    NoticeRow(D("2030-01-01"), None, False, ""),
                ],
                "请填写名称",
            ),
            ([NoticeRow(D("2030-01-01"), None, False, "元\u200b旦")], "U+200B"),
            (
                [NoticeRow(D("2030-01-01"), None, False, "元旦"), NoticeRow(D("2030-01-02"), None, True, "调休")],
                "1月2日 是周一至周五",
            ),
            (
                [
                    NoticeRow(D("2030-02-02"), D("2030-02-08"), False, "春节"),
                    NoticeRow(D("2030-02-02"), None, True, "调休"),
                ],
                "2月2日 不能既放假又调休上班",
            ),
            (
                [
                    NoticeRow(D("2030-02-02"), D("2030-02-08"), False, "春节"),
                    NoticeRow(D("2030-02-08"), None, False, "春节"),
                ],
                "2月8日 与前面的行重复",
            ),
            ([NoticeRow(D("2030-01-26"), None, True, "调休")], "至少要有一个放假日"),
            ([NoticeRow(D("2030-01-01"), D("2030-03-31"), False, "寒假")], "一行最多 31 天"),
            ([], "请至少填写一行"),
        ],
    )
    def test_refused_with_a_chinese_message(self, admin, rows, message):
        with pytest.raises(ValidationError) as excinfo:
            calendar_services.calendar_year_save(actor=admin, year=2030, rows=rows)
        assert message in messages_of(excinfo)
        assert not CalendarOverride.objects.exists()

    def test_holidays_on_weekends_are_fine(self, admin):
        # 2030-02-02 is a Saturday: a holiday block may start on a weekend.
        calendar_services.calendar_year_save(
            actor=admin, year=2030, rows=[NoticeRow(D("2030-02-02"), D("2030-02-03"), False, "周末假期")]
        )
        assert CalendarOverride.objects.filter(day__year=2030, is_working_day=False).count() == 2

    def test_a_failed_save_leaves_no_cached_calendar(self, admin):
        def boom(**kwargs):
            raise RuntimeError("receiver failed")

        calendar.calendar_changed.connect(boom)
        try:
            with pytest.raises(RuntimeError):
                calendar_services.calendar_year_save(actor=admin, year=2030, rows=notice_2030())
        finally:
            calendar.calendar_changed.disconnect(boom)
        assert is_working_day(D("2030-02-04"))


class TestCalendarPages:
    def test_only_platform_admins_see_the_page(self, alice_client):
        assert alice_client.get(reverse("core:calendar")).status_code == 403
        assert alice_client.get(reverse("core:calendar_year", args=[2030])).status_code == 403

    def test_index_lists_covered_and_missing_years(self, admin_client):
        with time_machine.travel(dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC), tick=False):
            page = admin_client.get(reverse("core:calendar")).content.decode()
        assert "2027 年节假日安排尚未录入" in page
        assert "系统内置" in page and "未录入，暂按周一至周五" in page

    def test_year_page_shows_the_package_holidays(self, admin_client):
        page = admin_client.get(reverse("core:calendar_year", args=[2026])).content.decode()
        assert "国庆节" in page and "10-01–10-07" in page

    def test_post_enters_the_notice(self, admin_client):
        data = {
            "form-TOTAL_FORMS": "4",
            "form-INITIAL_FORMS": "0",
            "form-0-start": "2030-02-02",
            "form-0-end": "2030-02-08",
            "form-0-kind": "holiday",
            "form-0-name": "春节（测试）",
            "form-1-start": "2030-01-26",
            "form-1-kind": "workday",
            "form-1-name": "春节调休上班（测试）",
            "form-2-kind": "holiday",  # an empty row
            "form-3-kind": "holiday",
        }
        response = admin_client.post(reverse("core:calendar_year", args=[2030]), data, follow=True)
        page = response.content.decode()
        assert "已保存 2030 年节假日安排（8 天）" in page
        assert not is_working_day(D("2030-02-04")) and is_working_day(D("2030-01-26"))
        # the form comes back filled with the entered rows, ranges kept together
        assert 'value="2030-02-02"' in page and 'value="2030-02-08"' in page and "02-02–02-08" in page

    def test_post_refused_shows_the_reason(self, admin_client):
        data = {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "0",
            "form-0-start": "2030-01-02",
            "form-0-kind": "workday",
            "form-0-name": "调休",
        }
        page = admin_client.post(reverse("core:calendar_year", args=[2030]), data).content.decode()
        assert "1月2日 是周一至周五" in page
        assert not CalendarOverride.objects.exists()

    def test_row_without_start_date(self, admin_client):
        data = {"form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "0", "form-0-kind": "holiday", "form-0-name": "元旦"}
        page = admin_client.post(reverse("core:calendar_year", args=[2030]), data).content.decode()
        assert "请填写开始日期" in page and not CalendarOverride.objects.exists()

    def test_year_out_of_range_is_404(self, admin_client):
        assert admin_client.get("/calendar/1900/").status_code == 404

    @pytest.mark.parametrize(
        ("day", "shown"),
        [
            (dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC), True),
            (dt.datetime(2026, 10, 30, 10, 0, tzinfo=dt.UTC), False),
        ],
    )
    def test_workbench_banner_for_platform_admins(self, admin_client, day, shown):
        with time_machine.travel(day, tick=False):
            page = admin_client.get(reverse("core:workbench")).content.decode()
        assert ("2027 年节假日安排尚未录入" in page) is shown

    def test_no_banner_for_staff(self, alice_client):
        with time_machine.travel(dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC), tick=False):
            assert "节假日安排尚未录入" not in alice_client.get(reverse("core:workbench")).content.decode()

    def test_no_banner_once_entered(self, admin_client, admin):
        with time_machine.travel(dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC), tick=False):
            calendar_services.calendar_year_save(
                actor=admin, year=2027, rows=[NoticeRow(D("2027-01-01"), None, False, "元旦（测试）")]
            )
            assert "节假日安排尚未录入" not in admin_client.get(reverse("core:workbench")).content.decode()
