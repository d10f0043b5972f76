"""Validators for Chinese identifiers: resident ID, unified social credit code, mobile number.

Each ``is_valid_*``/``normalise_*`` is pure; the ``validate_*`` wrappers raise Django's
ValidationError with a Chinese message, for model fields, forms and serializers alike.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# GB 11643-1999: weights of the first 17 digits, and the check character for sum % 11.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^[1-9][0-9]{16}[0-9X]$")

# GB 32100-2015: 31 characters (no I, O, Z, S, V), weights, check = 31 - sum % 31.
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_RE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$")

_MOBILE_RE = re.compile(r"^1[3-9][0-9]{9}$")  # [0-9], not \d: no full-width digits
_MOBILE_NOISE = re.compile(r"[\s\-()]")


def id_check_char(first17: str) -> str:
    return ID_CHECK[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def id_birth_date(number: str) -> dt.date | None:
    try:
        return dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def is_valid_resident_id(value: str, *, today: dt.date | None = None) -> bool:
    """18-digit resident ID: format, a real birth date not in the future, check character."""
    number = (value or "").strip().upper()
    if not _ID_RE.match(number):
        return False
    birth = id_birth_date(number)
    if birth is None or birth.year < 1900 or birth > (today or dt.date.today()):
        return False
    return id_check_char(number[:17]) == number[17]


def uscc_check_char(first17: str) -> str:
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31]


def is_valid_credit_code(value: str) -> bool:
    """18-character unified social credit code (统一社会信用代码) with its check character."""
    code = (value or "").strip().upper()
    return bool(_USCC_RE.match(code)) and uscc_check_char(code[:17]) == code[17]


def normalise_mobile(value: str) -> str:
    """Strip spaces, dashes and a +86/0086 prefix; returns the 11 digits (maybe invalid)."""
    if value and len(value) == 11 and value.isascii() and value.isdigit():
        return value  # the common case, in a million-row spreadsheet
    digits = _MOBILE_NOISE.sub("", value or "")
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            digits = digits[len(prefix) :]
            break
    return digits


def is_valid_mobile(value: str) -> bool:
    """Mainland mobile number: 11 digits starting 13–19."""
    return bool(_MOBILE_RE.match(normalise_mobile(value)))


def validate_resident_id(value: str) -> None:
    if not is_valid_resident_id(value):
        raise ValidationError(_("身份证号码无效：须为 18 位，出生日期真实，且校验位正确。"), code="invalid_id")


def validate_credit_code(value: str) -> None:
    if not is_valid_credit_code(value):
        raise ValidationError(_("统一社会信用代码无效：须为 18 位，且校验位正确。"), code="invalid_uscc")


def validate_mobile(value: str) -> None:
    if not is_valid_mobile(value):
        raise ValidationError(_("手机号码无效：须为 11 位中国大陆手机号码。"), code="invalid_mobile")


# Characters that change how a name looks without being seen: bidi embeddings, overrides and
# isolates (U+202A–202E, U+2066–2069), marks (U+200E/F, U+061C), zero-width characters
# (U+200B–200D, U+2060, U+FEFF) — all Unicode category Cf — plus control characters (Cc) and
# line/paragraph separators. ``教\u200b育`` would otherwise pass for ``教育``.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def first_invisible_char(value: str) -> str | None:
    """The first control, format (bidi, zero-width) or separator character in ``value``, if any."""
    if not value or (value.isascii() and value.isprintable()):
        return None
    for char in value:
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            return char
    return None


def validate_visible_text(value: str) -> None:
    """Refuse names and codes holding invisible or direction-changing characters."""
    char = first_invisible_char(value if isinstance(value, str) else str(value or ""))
    if char is not None:
        raise ValidationError(
            _("不能包含控制字符、零宽字符或文字方向控制字符（发现 %(char)s）。"),
            code="invisible_char",
            params={"char": f"U+{ord(char):04X}"},
        )
