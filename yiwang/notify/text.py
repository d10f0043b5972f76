"""SMS text rules: placeholders, the 【签名】 signature, length and parts.

Pure functions, so a template preview, a spreadsheet row check and the dispatcher all count
the same way. The rules:

* **Placeholders** are written ``((姓名))`` as in GOV.UK Notify; a name is letters (Chinese
  or ASCII), digits, ``_`` or ``-``, single spaces allowed inside. Full-width parentheses
  ``（（姓名））`` are what a Chinese keyboard types, so they are accepted and ``normalise``
  rewrites them to ``((姓名))``. Names match exactly (after trimming surrounding spaces).
* **Values** are inserted literally in one pass: a value containing ``((x))`` is not expanded
  again. A value is one line: line breaks and tabs become one space (a spreadsheet cell with
  a line break must not reshape the message); invisible control and format characters
  (NUL, zero-width, bidi overrides, BOM) are removed because they can disguise a message; the
  signature brackets 【】 become [] so a value cannot forge a second sender. An empty value
  counts as missing.
* **Signature**: 2–12 characters, no brackets or spaces, put in front as ``【北仑区政府】``.
* **Length**: every Unicode code point counts one, Chinese or ASCII, signature included (the
  Chinese carriers' rule). Up to 70 characters is one part; a longer text is split into parts
  of 67 (the rest carries the concatenation header). Above ``MAX_LENGTH`` the text is refused.
  Some carriers count a character outside the BMP (emoji) as two; we do not special-case it.

Errors are ``ValidationError`` subclasses with Chinese messages, so forms, serializers and
services can let them through unchanged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

SINGLE_PART_LENGTH = 70
CONCAT_PART_LENGTH = 67
MAX_LENGTH = 500  # the longest text (signature included) the platform sends, about 8 parts
SIGNATURE_MIN_LENGTH, SIGNATURE_MAX_LENGTH = 2, 12

_NAME = r"[\w\-]+(?: [\w\-]+)*"
_PLACEHOLDER_RE = re.compile(rf"[(（]{{2}}[ 　]*({_NAME})[ 　]*[)）]{{2}}")
_STRAY_RE = re.compile(r"[(（]{2}|[)）]{2}")
_LINE_BREAKS_RE = re.compile(r"\s*[\r\n\t\v\f\x1c-\x1e\x85\u2028\u2029]+\s*")
_BRACKETS = "【】[]［］〔〕〖〗()（）<>《》〈〉{}"
_VALUE_BRACKETS = str.maketrans({"【": "[", "】": "]"})


class SmsTextError(ValidationError):
    """A text rule was broken; ``str(error)`` is the Chinese message."""

    def __init__(self, message: str, code: str):
        super().__init__(message, code=code)

    def __str__(self) -> str:
        return str(self.message)


class MissingPlaceholders(SmsTextError):
    """Values are missing (or empty) for these placeholder names."""

    def __init__(self, names: list[str]):
        self.names = list(names)
        super().__init__(_("缺少占位符的值：%(names)s") % {"names": "、".join(self.names)}, "missing_placeholders")


class TooLong(SmsTextError):
    """The text is longer than the platform sends."""

    def __init__(self, length: int, limit: int):
        self.length, self.limit = length, limit
        message = _("短信内容超长：%(length)s 字（含签名），上限 %(limit)s 字。") % {"length": length, "limit": limit}
        super().__init__(message, "too_long")


class BadSignName(SmsTextError):
    """The 【签名】 sender name breaks the carriers' rules."""

    def __init__(self, message: str):
        super().__init__(message, "bad_signature")


class BadTemplate(SmsTextError):
    """The template body cannot be sent as written."""

    def __init__(self, message: str):
        super().__init__(message, "bad_template")


# --- placeholders ------------------------------------------------------------------------


def normalise(body: str) -> str:
    """A template body as stored: ``\\r\\n`` → ``\\n``, trimmed, placeholders as ``((name))``."""
    body = (body or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    return _PLACEHOLDER_RE.sub(lambda m: f"(({m.group(1)}))", body)


def placeholders(body: str) -> list[str]:
    """Placeholder names of ``body`` in order of first appearance, each once."""
    return list(dict.fromkeys(m.group(1) for m in _PLACEHOLDER_RE.finditer(body or "")))


# Values made only of these characters need no cleaning (the common case: names, dates,
# numbers); ``\w`` never matches a control or format character.
_PLAIN_VALUE_RE = re.compile(r"[\w ,.:;!?@#%&*+=/()（）：，。、！？“”‘’《》·—…~¥$'\-]*")


def clean_value(value: object) -> str:
    """A value as inserted: one line, no invisible characters, no 【】, trimmed."""
    value = "" if value is None else str(value)
    if _PLAIN_VALUE_RE.fullmatch(value):
        return value.strip()
    value = _LINE_BREAKS_RE.sub(" ", value)
    value = "".join(ch for ch in value if unicodedata.category(ch) not in ("Cc", "Cf"))
    return value.translate(_VALUE_BRACKETS).strip()


def render(body: str, values: Mapping[str, object]) -> str:
    """Fill every placeholder of ``body`` from ``values``; raises ``MissingPlaceholders``."""
    cleaned = {str(name).strip(): clean_value(value) for name, value in (values or {}).items()}
    missing = [name for name in placeholders(body) if not cleaned.get(name)]
    if missing:
        raise MissingPlaceholders(missing)
    return _PLACEHOLDER_RE.sub(lambda m: cleaned[m.group(1)], body)


def compile_body(body: str):
    """``render`` for one body and many rows (a mass send): the body is parsed once.

    Returns ``fill(values) -> str`` raising ``MissingPlaceholders`` like ``render``.
    """
    pieces = _PLACEHOLDER_RE.split(body or "")  # literal, name, literal, name, …, literal
    names = list(dict.fromkeys(pieces[1::2]))

    def fill(values: Mapping[str, object]) -> str:
        cleaned = {name: clean_value(values.get(name)) for name in names}
        missing = [name for name in names if not cleaned[name]]
        if missing:
            raise MissingPlaceholders(missing)
        out = pieces[:]
        out[1::2] = [cleaned[name] for name in pieces[1::2]]
        return "".join(out)

    return fill


def check_template(body: str, *, signature: str = "", limit: int = MAX_LENGTH) -> None:
    """Refuse a template that cannot be sent: empty, broken ``((…))``, 【】 inside, or too long
    before any value is filled in (its fixed text plus the signature)."""
    body = normalise(body)
    if not body:
        raise BadTemplate(_("短信内容不能为空。"))
    # Blank the placeholders out (same length) so a leftover "((" or "))" is found in place.
    stray = _STRAY_RE.search(_PLACEHOLDER_RE.sub(lambda m: "\0" * len(m.group(0)), body))
    if stray:
        raise BadTemplate(
            _("占位符格式不正确（“%(text)s”附近）：应写成 ((名称))，名称只含文字、数字、下划线或横线。")
            % {"text": body[max(0, stray.start() - 6) : stray.end() + 6]}
        )
    if "【" in body or "】" in body:
        raise BadTemplate(_("短信内容中不能含有【】：运营商会把它当作签名。签名由平台自动加在开头。"))
    fixed = _PLACEHOLDER_RE.sub("", body)
    check_length(with_signature(fixed, signature) if signature else fixed, limit=limit)


# --- signature ---------------------------------------------------------------------------


def validate_signature(signature: str) -> str:
    """The bare sender name (【】 around it are dropped) if it is valid; raises ``BadSignName``."""
    name = (signature or "").strip()
    if name.startswith("【") and name.endswith("】"):
        name = name[1:-1].strip()
    if not SIGNATURE_MIN_LENGTH <= len(name) <= SIGNATURE_MAX_LENGTH:
        raise BadSignName(
            _("短信签名须为 %(min)s–%(max)s 个字。") % {"min": SIGNATURE_MIN_LENGTH, "max": SIGNATURE_MAX_LENGTH}
        )
    if any(ch in _BRACKETS for ch in name):
        raise BadSignName(_("短信签名中不能含有括号。"))
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
        raise BadSignName(_("短信签名中不能含有空格或控制字符。"))
    return name


def with_signature(text: str, signature: str) -> str:
    """``【signature】text`` — the form carriers require at the start of a message."""
    return f"【{validate_signature(signature)}】{text}"


# --- length and parts --------------------------------------------------------------------


def sms_length(text: str) -> int:
    """Characters as the carriers count them: one per code point, Chinese or ASCII."""
    return len(text or "")


def check_length(text: str, *, limit: int = MAX_LENGTH) -> int:
    """The length of ``text``; raises ``TooLong`` above ``limit``."""
    length = sms_length(text)
    if length > limit:
        raise TooLong(length, limit)
    return length


def sms_parts(text: str, *, limit: int = MAX_LENGTH) -> int:
    """How many SMS the carriers bill: 1 up to 70 characters, else ⌈n / 67⌉; 0 for no text."""
    length = check_length(text, limit=limit)
    if length <= SINGLE_PART_LENGTH:
        return 1 if length else 0
    return -(-length // CONCAT_PART_LENGTH)


def compose(body: str, values: Mapping[str, object], *, signature: str, limit: int = MAX_LENGTH) -> str:
    """The final text of one message: rendered, signed and length-checked."""
    final = with_signature(render(body, values), signature)
    check_length(final, limit=limit)
    return final
