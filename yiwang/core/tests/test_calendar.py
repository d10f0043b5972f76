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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yiwang.core import calendar
from yiwang.core.calendar import add_working_days, is_working_day, working_days_between
from yiwang.core.models import CalendarOverride

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
