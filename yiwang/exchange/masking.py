"""Masking of personal values (脱敏): ``mask(value, how)`` with ``how`` one of ``DataItem.Mask``.

Pure and cheap (string slicing only): the registry pages mask every row of a list with it and
the gateway masks every returned item that is not granted in plain text.

=============  ==========================  ======================================
how            example in                  out
=============  ==========================  ======================================
``name``       张三丰 / 张三 / 张          张*丰 / 张* / *
``id_number``  330206198503121234          330206********1234 (first 6, last 4)
``phone``      13812341234                 138****1234 (first 3, last 4)
``address``    浙江省宁波市北仑区新碶街道…  浙江省宁波市**** (first 6 characters)
``date``       1985-03-12                  1985-**-** (the year only)
``full``       anything                    ******
``""``         anything                    unchanged
=============  ==========================  ======================================

``None`` and ``""`` stay as they are (nothing to hide); other values are masked as text. An
unknown ``how`` hides the whole value: a typo must never leak data.
"""

from __future__ import annotations

import datetime as dt

STAR = "*"
HIDDEN = "******"  # a fixed width, so the length of a hidden value is not told either
ADDRESS_KEEP = 6


def _name(text: str) -> str:
    n = len(text)
    if n == 1:
        return STAR
    if n == 2:
        return text[0] + STAR
    return text[0] + STAR * (n - 2) + text[-1]


def _id_number(text: str) -> str:
    n = len(text)
    if n > 10:
        return text[:6] + STAR * (n - 10) + text[-4:]
    if n > 4:  # short document numbers: the last two only
        return STAR * (n - 2) + text[-2:]
    return STAR * n


def _phone(text: str) -> str:
    n = len(text)
    if n >= 8:
        return text[:3] + STAR * (n - 7) + text[-4:]
    if n > 4:
        return STAR * (n - 2) + text[-2:]
    return STAR * n


def _address(text: str) -> str:
    if len(text) > ADDRESS_KEEP:
        return text[:ADDRESS_KEEP] + STAR * 4
    keep = len(text) // 2
    return text[:keep] + STAR * (len(text) - keep)


def _date(value) -> str:
    if isinstance(value, dt.date):  # a datetime is a date too
        return f"{value.year:04d}-**-**"
    text = str(value)
    if len(text) >= 4 and text[:4].isdigit():
        return text[:4] + "-**-**"
    return HIDDEN


_BY_HOW = {"name": _name, "id_number": _id_number, "phone": _phone, "address": _address}


def mask(value, how: str | None):
    """``value`` masked the ``how`` way (a ``DataItem.Mask`` value); None and "" stay as they are."""
    if not how or value is None or value == "":
        return value
    if how == "date":
        return _date(value)
    if how == "full":
        return HIDDEN
    masker = _BY_HOW.get(how)
    if masker is None:
        return HIDDEN
    return masker(value if isinstance(value, str) else str(value))


def mask_record(record: dict, masks: dict[str, str]) -> dict:
    """A copy of ``record`` with each column in ``masks`` masked its way."""
    return {column: mask(value, masks.get(column, "")) for column, value in record.items()}
