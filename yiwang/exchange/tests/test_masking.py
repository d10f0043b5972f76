"""masking.mask: every DataItem.Mask way, short and empty values, non-text values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from yiwang.exchange.masking import HIDDEN, mask, mask_record
from yiwang.exchange.models import DataItem


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("张", "*"),
        ("张三", "张*"),
        ("张三丰", "张*丰"),
        ("欧阳娜娜", "欧**娜"),
        ("阿卜杜热西提·买买提", "阿********提"),
    ],
)
def test_name(value, expected):
    assert mask(value, "name") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("330206198503121234", "330206********1234"),
        ("33020619850312123X", "330206********123X"),
        ("330206850312123", "330206*****2123"),  # 15-digit old ID
        ("E12345678", "*******78"),  # a short document number: the last two only
        ("1234", "****"),
    ],
)
def test_id_number(value, expected):
    assert mask(value, "id_number") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("13812341234", "138****1234"),
        ("0574-86781234", "057******1234"),
        ("86781234", "867*1234"),
        ("12345", "***45"),
        ("110", "***"),
    ],
)
def test_phone(value, expected):
    assert mask(value, "phone") == expected


def test_address():
    assert mask("浙江省宁波市北仑区新碶街道明州路100号", "address") == "浙江省宁波市****"
    assert mask("北仑区", "address") == "北**"
    assert mask("新碶", "address") == "新*"


def test_date():
    assert mask("1985-03-12", "date") == "1985-**-**"
    assert mask(dt.date(1985, 3, 12), "date") == "1985-**-**"
    assert mask(dt.datetime(1985, 3, 12, 8, 30), "date") == "1985-**-**"
    assert mask("去年", "date") == HIDDEN


def test_full_and_none_and_unknown():
    assert mask("任何内容", "full") == HIDDEN
    assert mask(12345, "full") == HIDDEN
    assert mask("张三", "") == "张三"
    assert mask("张三", None) == "张三"
    assert mask("张三", "typo") == HIDDEN  # an unknown way hides everything


@pytest.mark.parametrize("how", [c for c, _label in DataItem.Mask.choices])
@pytest.mark.parametrize("value", [None, ""])
def test_nothing_to_hide(value, how):
    assert mask(value, how) == value


def test_values_that_are_not_text():
    assert mask(13812341234, "phone") == "138****1234"
    assert mask(Decimal("121.844000"), "") == Decimal("121.844000")


def test_every_mask_choice_is_handled():
    for how, _label in DataItem.Mask.choices:
        if how:
            assert mask("浙江省宁波市北仑区新碶街道", how) != "浙江省宁波市北仑区新碶街道"


def test_record():
    record = {"name": "张三丰", "id_number": "330206198503121234", "street": "新碶街道"}
    masks = {"name": "name", "id_number": "id_number"}
    assert mask_record(record, masks) == {"name": "张*丰", "id_number": "330206********1234", "street": "新碶街道"}
