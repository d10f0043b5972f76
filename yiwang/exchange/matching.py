"""“Don't collect what you can share” (免于重复采集): which form fields the exchange can supply.

A form's field labels (申请人姓名, 身份证号码, 企业名称 …) are compared with the information items
(信息项) of the published catalogue that may be shared (the entry and the item both not
“不予共享”):

1. the label, normalised (``label_normalise``), equals an item's name → 名称一致;
2. it equals one of the item's synonyms — its own ``DataItem.synonyms`` merged with the
   built-in table ``SYNONYMS`` below → 同义词;
3. else jieba words and characters of the label and of the item's names overlap enough
   (``TOKEN_THRESHOLD``) and the two end alike (the head word: 地址, 电话, 姓名 …) → 分词相似.

A label that matches nothing must still be collected (需采集). A match says whether the
asking unit already holds a live grant covering the item (可直接调用) or must apply (需申请).

The index of published items is built once per process and rebuilt when the catalogue
changes (the stamp is the entries' count and latest ``updated_at`` plus the gateway's cache
generation) or after ``INDEX_TTL`` seconds, whichever comes first.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import time
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db.models import Count, Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yiwang.core import search

from .models import CatalogEntry, DataItem, Grant, SharingType

MAX_FIELDS = 200
MAX_LABEL_LENGTH = 50
TOKEN_THRESHOLD = 0.6
INDEX_TTL = 300  # seconds; the stamp catches most changes sooner

# Built-in synonyms: canonical term → other names forms use for it. An item whose name (or one
# of its own synonyms) is any term of a group gets the whole group. Keep groups narrow: a term
# in two groups would merge them for that item.
SYNONYMS: dict[str, list[str]] = {
    # 人口
    "公民身份号码": [
        "身份证号",
        "身份证号码",
        "证件号码",
        "居民身份证号",
        "居民身份证号码",
        "公民身份证号",
        "身份证",
        "身份号码",
        "身份证件号码",
    ],
    "姓名": ["名字", "申请人姓名", "户主姓名", "真实姓名", "本人姓名"],
    "性别": ["性别代码"],
    "出生日期": ["出生年月", "生日", "出生年月日", "出生时间"],
    "民族": ["民族名称"],
    "联系电话": ["手机号", "手机号码", "电话", "联系方式", "移动电话", "手机", "电话号码", "联系手机"],
    "户籍地址": ["户籍所在地", "户口所在地", "家庭住址", "户籍地", "户口地址", "户籍住址", "常住户口所在地"],
    "户号": ["户口簿户号", "户籍户号"],
    # 法人
    "统一社会信用代码": ["信用代码", "营业执照号", "社会信用代码", "营业执照注册号", "统一代码"],
    "企业名称": ["名称", "单位名称", "公司名称", "机构名称", "法人名称", "市场主体名称"],
    "法定代表人": ["法人代表", "法定代表人姓名", "法人", "法定代表人名称"],
    "住所": ["注册地址", "企业地址", "注册地", "企业住所", "单位地址", "公司地址"],
    "成立日期": ["注册日期", "成立时间", "设立日期"],
    "注册资本": ["注册资金", "注册资本金"],
    "登记状态": ["经营状态", "企业状态"],
    # 空间地理 / 不动产
    "房屋坐落": ["房屋地址", "不动产坐落", "房产地址", "坐落", "房屋坐落位置"],
    "不动产权证号": ["房产证号", "不动产证号", "产权证号", "不动产权证书号"],
    "标准地址": ["规范地址", "标准化地址"],
}

# Prefixes that say whose value it is, not what it is (申请人姓名 is a 姓名). 法定代表人 is an
# item of its own and never a prefix.
LABEL_PREFIXES = ("申请人", "申请者", "申报人", "办事人", "本人", "请填写", "填写")
_BRACKETS = re.compile(r"[(\[（【〔<《][^()\[\]（）【】〔〕<>《》]*[)\]）】〕>》]")
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)
_SPLIT = re.compile(r"[\n\r,，、;；\t]+")
_ITEM_SYNONYM_SPLIT = re.compile(r"[,，、;；\s]+")


class Result:
    """What a form field needs: 可共享获取 (granted), 需申请 (shareable, not yet granted), 需采集."""

    SHARED = "shared"
    REQUEST = "request"
    COLLECT = "collect"
    LABELS = {
        SHARED: gettext_lazy("可共享获取"),
        REQUEST: gettext_lazy("需申请"),
        COLLECT: gettext_lazy("需采集"),
    }


class MatchKind:
    EXACT = "exact"
    SYNONYM = "synonym"
    TOKEN = "token"
    LABELS = {
        EXACT: gettext_lazy("名称一致"),
        SYNONYM: gettext_lazy("同义词"),
        TOKEN: gettext_lazy("分词相似"),
    }
    RANK = {EXACT: 0, SYNONYM: 1, TOKEN: 2}


@dataclass(frozen=True)
class Source:
    """One shareable information item of a published entry, with every name it goes by."""

    entry_id: int
    resource_code: str
    resource_name: str
    class_code: str
    provider_id: int
    provider_name: str
    item_code: str
    item_name: str
    sharing_type: str  # the stricter of the entry's and the item's
    names: frozenset[str]  # normalised item name(s)
    synonyms: frozenset[str]  # normalised synonyms (not the names)


@dataclass
class Match:
    """The answer for one form field label."""

    label: str
    normalised: str
    source: Source | None = None
    kind: str = ""
    score: float = 0.0
    granted: bool = False
    alternatives: int = 0  # other shareable items that would match as well

    @property
    def matched(self) -> bool:
        return self.source is not None

    @property
    def result(self) -> str:
        if self.source is None:
            return Result.COLLECT
        return Result.SHARED if self.granted else Result.REQUEST

    @property
    def result_label(self) -> str:
        return str(Result.LABELS[self.result])

    @property
    def kind_label(self) -> str:
        return str(MatchKind.LABELS[self.kind]) if self.kind else ""

    @property
    def sharing_label(self) -> str:
        return str(SharingType(self.source.sharing_type).label) if self.source else ""

    @property
    def percent(self) -> int:
        return round(self.score * 100)

    def as_dict(self) -> dict:
        """The JSON shape the API returns (and the page's download writes)."""
        source = self.source
        return {
            "label": self.label,
            "normalised": self.normalised,
            "result": self.result,
            "result_display": self.result_label,
            "matched": self.matched,
            "granted": self.granted,
            "match_type": self.kind,
            "match_type_display": self.kind_label,
            "score": round(self.score, 2),
            "resource": (
                {
                    "code": source.resource_code,
                    "name": source.resource_name,
                    "provider": {"id": source.provider_id, "name": source.provider_name},
                }
                if source
                else None
            ),
            "item": {"code": source.item_code, "name": source.item_name} if source else None,
            "sharing_type": source.sharing_type if source else "",
            "sharing_type_display": self.sharing_label,
            "alternatives": self.alternatives,
        }


# --- normalising labels -----------------------------------------------------------------


def label_normalise(label: str) -> str:
    """A label as compared: half-width, lower case, no notes in brackets, no spaces,
    punctuation, colon or asterisk, no “whose” prefix (申请人…), 号码 → 号."""
    text = unicodedata.normalize("NFKC", label or "").lower()
    text = _BRACKETS.sub("", text)
    text = _NOT_WORD.sub("", text)
    text = text.replace("号码", "号")
    for prefix in LABEL_PREFIXES:
        rest = text[len(prefix) :]
        if text.startswith(prefix) and len(rest) >= 2:
            text = rest
            break
    return text


def labels_parse(text: str) -> list[str]:
    """Field labels typed one per line or separated by commas (，、;), blanks and repeats dropped."""
    labels: list[str] = []
    for part in _SPLIT.split(text or ""):
        part = part.strip()
        if part and part not in labels:
            labels.append(part)
    return labels


def _words(term: str) -> frozenset[str]:
    # jieba's search-mode words, through the one tokenizer the platform's search uses;
    # single characters are compared separately (_chars).
    return frozenset(word for word in search.tokenize(term) if len(word) > 1)


def _chars(term: str) -> frozenset[str]:
    return frozenset(term)


def _dice(a: frozenset[str], b: frozenset[str]) -> float:
    return 2 * len(a & b) / (len(a) + len(b)) if a and b else 0.0


def _heads_agree(a: str, b: str) -> bool:
    """Whether two names end alike (one holds the other's last two characters): 房屋坐落地址 and
    房屋坐落 do, 联系人姓名 and 联系电话 do not."""
    return a[-2:] in b or b[-2:] in a


# --- the index of shareable items ---------------------------------------------------------


@dataclass
class _Term:
    source: int
    text: str
    words: frozenset[str]
    chars: frozenset[str]


@dataclass
class _Index:
    sources: list[Source] = field(default_factory=list)
    exact: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    synonym: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    terms: list[_Term] = field(default_factory=list)
    by_word: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))  # word → term indexes


def _synonym_groups() -> list[frozenset[str]]:
    return [frozenset(label_normalise(t) for t in [canonical, *others]) for canonical, others in SYNONYMS.items()]


def _stricter(a: str, b: str) -> str:
    return SharingType.CONDITIONAL if SharingType.CONDITIONAL in (a, b) else SharingType.UNCONDITIONAL


def _index_build() -> _Index:
    groups = _synonym_groups()
    index = _Index()
    items = (
        DataItem.objects.filter(entry__status=CatalogEntry.Status.PUBLISHED)
        .exclude(entry__sharing_type=SharingType.NONE)
        .exclude(sharing_type=SharingType.NONE)
        .select_related("entry", "entry__provider")
        .order_by("entry__code", "position", "id")
    )
    for item in items:
        entry = item.entry
        name = label_normalise(item.name)
        own = {label_normalise(s) for s in _ITEM_SYNONYM_SPLIT.split(item.synonyms or "") if s.strip()}
        known = {name, *own}
        merged = set(own)
        for group in groups:
            if group & known:
                merged |= group
        merged.discard(name)
        merged.discard("")
        source = Source(
            entry_id=entry.pk,
            resource_code=entry.code,
            resource_name=entry.name,
            class_code=entry.class_code,
            provider_id=entry.provider_id,
            provider_name=entry.provider.name,
            item_code=item.code,
            item_name=item.name,
            sharing_type=_stricter(entry.sharing_type, item.sharing_type),
            names=frozenset({name} - {""}),
            synonyms=frozenset(merged),
        )
        number = len(index.sources)
        index.sources.append(source)
        if name:
            index.exact[name].append(number)
        for synonym in merged:
            index.synonym[synonym].append(number)
        for text in source.names | source.synonyms:
            term = _Term(source=number, text=text, words=_words(text), chars=_chars(text))
            index.terms.append(term)
            for word in term.words:
                index.by_word[word].add(len(index.terms) - 1)
    return index


_lock = threading.Lock()
_cached: dict = {"stamp": None, "at": 0.0, "index": None}


def _stamp() -> tuple:
    # The gateway moves its generation on every change to entries and grants.
    from .gateway import GENERATION_KEY

    figures = CatalogEntry.objects.aggregate(n=Count("id"), last=Max("updated_at"))
    return (cache.get(GENERATION_KEY), figures["n"], figures["last"])


def index_get() -> _Index:
    """The index of shareable items, rebuilt when the catalogue changed or is older than INDEX_TTL."""
    stamp = _stamp()
    now = time.monotonic()
    with _lock:
        if _cached["index"] is not None and _cached["stamp"] == stamp and now - _cached["at"] < INDEX_TTL:
            return _cached["index"]
    index = _index_build()
    with _lock:
        _cached.update(stamp=stamp, at=now, index=index)
    return index


def index_clear() -> None:
    """Forget the cached index (tests; after editing synonyms in place)."""
    with _lock:
        _cached.update(stamp=None, at=0.0, index=None)


# --- matching ---------------------------------------------------------------------------


def _live_grants(unit) -> dict[str, set[str]]:
    """resource code → items the unit's systems may read now."""
    unit_id = getattr(unit, "pk", unit)
    if not unit_id:
        return {}
    today = timezone.localdate()
    granted: dict[str, set[str]] = defaultdict(set)
    rows = Grant.objects.filter(unit_id=unit_id, revoked_at__isnull=True).filter(
        Q(expires_on__isnull=True) | Q(expires_on__gte=today)
    )
    for code, items in rows.values_list("resource_code", "items"):
        granted[code].update(items or [])
    return granted


def _candidates(index: _Index, normalised: str) -> list[tuple[int, str, float]]:
    """(source, kind, score) of every item the label may mean, best kind first."""
    if not normalised:
        return []
    found = [(n, MatchKind.EXACT, 1.0) for n in index.exact.get(normalised, ())]
    seen = {n for n, _kind, _score in found}
    found += [(n, MatchKind.SYNONYM, 1.0) for n in index.synonym.get(normalised, ()) if n not in seen]
    if found:
        return found
    words, chars = _words(normalised), _chars(normalised)
    best: dict[int, float] = {}
    for number in {t for word in words for t in index.by_word.get(word, ())}:
        term = index.terms[number]
        if not _heads_agree(normalised, term.text):
            continue
        score = (_dice(words, term.words) + _dice(chars, term.chars)) / 2
        if score >= TOKEN_THRESHOLD and score > best.get(term.source, 0.0):
            best[term.source] = score
    return [(n, MatchKind.TOKEN, score) for n, score in best.items()]


def fields_match(*, labels: list[str], unit=None) -> list[Match]:
    """For each form field label, the shareable item that can supply it (or none: 需采集),
    and whether ``unit`` (a Unit or its id) already holds a live grant covering it."""
    index = index_get()
    grants = _live_grants(unit)
    normalised = [label_normalise(label) for label in labels]
    found = [_candidates(index, text) for text in normalised]

    def granted(number: int) -> bool:
        source = index.sources[number]
        return source.item_code in grants.get(source.resource_code, ())

    # A resource that serves several fields of the form is preferred over one serving a
    # single field among equals: the form then needs fewer grants.
    hits: dict[str, int] = defaultdict(int)
    for candidates in found:
        for code in {index.sources[n].resource_code for n, kind, _s in candidates if kind != MatchKind.TOKEN}:
            hits[code] += 1

    def preference(candidate: tuple[int, str, float]) -> tuple:
        number, kind, score = candidate
        source = index.sources[number]
        return (
            MatchKind.RANK[kind],
            -round(score, 2),
            not granted(number),
            -hits[source.resource_code],
            source.sharing_type != SharingType.UNCONDITIONAL,
            not source.class_code.startswith("1"),  # base resources (基础信息资源) first
            source.resource_code,
            source.item_code,
        )

    matches = []
    for label, text, candidates in zip(labels, normalised, found):
        match = Match(label=label, normalised=text)
        if candidates:
            number, kind, score = min(candidates, key=preference)
            match.source, match.kind, match.score = index.sources[number], kind, score
            match.granted = granted(number)
            match.alternatives = len(candidates) - 1
        matches.append(match)
    return matches


def summary(matches: list[Match]) -> dict:
    """Totals for a form: fields, obtainable by sharing (granted + to apply), to collect, percent."""
    total = len(matches)
    shared = sum(1 for m in matches if m.result == Result.SHARED)
    request = sum(1 for m in matches if m.result == Result.REQUEST)
    matched = shared + request
    return {
        "total": total,
        "matched": matched,
        "granted": shared,
        "request": request,
        "collect": total - matched,
        "percent": round(matched * 100 / total) if total else 0,
    }


# --- the download -------------------------------------------------------------------------

REPORT_FORMATS = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}


def _report_headers() -> list[str]:
    return [
        _("序号"),
        _("表单字段"),
        _("核验结果"),
        _("资源代码"),
        _("资源名称"),
        _("提供方"),
        _("信息项代码"),
        _("信息项名称"),
        _("共享类型"),
        _("匹配方式"),
        _("相似度"),
        _("本单位已授权"),
    ]


def _report_rows(matches: Iterable[Match]) -> Iterable[list]:
    for number, match in enumerate(matches, start=1):
        source = match.source
        yield [
            number,
            match.label,
            match.result_label,
            source.resource_code if source else "",
            source.resource_name if source else "",
            source.provider_name if source else "",
            source.item_code if source else "",
            source.item_name if source else "",
            match.sharing_label,
            match.kind_label,
            f"{match.percent}%" if source else "",
            (_("是") if match.granted else _("否")) if source else "",
        ]


def text_cell(value):
    """A cell that a spreadsheet will not run as a formula (=, +, -, @ at the start)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def fields_report(*, labels: list[str], unit=None, fmt: str = "xlsx", title: str = "") -> bytes:
    """The check of a form's fields as a spreadsheet (``fmt`` "xlsx" or "csv")."""
    matches = fields_match(labels=labels, unit=unit)
    figures = summary(matches)
    line = (
        _(
            "%(total)s 个字段中 %(matched)s 个可通过共享获取"
            "（已授权 %(granted)s 个，需申请 %(request)s 个），%(collect)s 个需采集。"
        )
        % figures
    )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(_report_headers())
        for row in _report_rows(matches):
            writer.writerow([text_cell(value) for value in row])
        return ("\ufeff" + out.getvalue()).encode("utf-8")
    if fmt != "xlsx":
        raise ValueError(fmt)
    import openpyxl
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = _("字段核验")
    sheet.append([title or _("表单字段共享核验")])
    sheet["A1"].font = Font(bold=True, size=13)
    sheet.append([line])
    sheet.append([])
    sheet.append(_report_headers())
    for cell in sheet[4]:
        cell.font = Font(bold=True)
    for number, row in enumerate(_report_rows(matches), start=5):
        for column, value in enumerate(row, start=1):
            cell = sheet.cell(row=number, column=column)
            if isinstance(value, str):
                cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
                cell.data_type = "s"  # "=…" stays text (formula injection)
            else:
                cell.value = value
    for column, width in enumerate((6, 22, 12, 20, 24, 18, 18, 18, 12, 12, 8, 12), start=1):
        sheet.column_dimensions[get_column_letter(column)].width = width
    sheet.freeze_panes = "A5"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
