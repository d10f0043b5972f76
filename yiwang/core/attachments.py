"""The one attachment mechanism (附件): every module stores its files through here.

A file is accepted by its content, never by its name or the browser's type: the first bytes
(and, for zip containers, the entries) decide what it is; the name's extension must agree.
Each use passes its allow-list (``kinds``) and size limit. Accepted files are hashed
(SHA-256), handed to the virus-scan hook (``YIWANG_ATTACHMENT_SCANNER``, a dotted path to a
callable; none by default) and saved through Django's storage API under a random name, so
``STORAGES["default"]`` may be S3-compatible object storage in production.

Who may download is the owning module's rule: ``register_viewer(module, check)``; without
one, the uploader and those who see the attachment's unit.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .permissions import can_see_unit

OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Word 97–2003, Excel 97–2003, WPS, ET, PowerPoint 97–2003
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
HEAD = 8192
OOXML = "application/vnd.openxmlformats-officedocument."


@dataclass(frozen=True)
class Kind:
    code: str
    label: str
    content_type: str
    extensions: tuple[str, ...]


KINDS = {
    k.code: k
    for k in (
        Kind("pdf", "PDF", "application/pdf", (".pdf",)),
        Kind("ofd", "OFD", "application/ofd", (".ofd",)),
        Kind("docx", "Word", f"{OOXML}wordprocessingml.document", (".docx",)),
        Kind("xlsx", "Excel", f"{OOXML}spreadsheetml.sheet", (".xlsx",)),
        Kind("pptx", "PowerPoint", f"{OOXML}presentationml.presentation", (".pptx",)),
        Kind("doc", "Word 97–2003", "application/msword", (".doc",)),
        Kind("xls", "Excel 97–2003", "application/vnd.ms-excel", (".xls",)),
        Kind("ppt", "PowerPoint 97–2003", "application/vnd.ms-powerpoint", (".ppt",)),
        Kind("wps", "WPS", "application/vnd.ms-works", (".wps", ".et", ".dps")),
        Kind("png", "PNG", "image/png", (".png",)),
        Kind("jpeg", "JPEG", "image/jpeg", (".jpg", ".jpeg")),
        Kind("gif", "GIF", "image/gif", (".gif",)),
        Kind("txt", gettext_lazy("文本"), "text/plain", (".txt",)),
        Kind("csv", "CSV", "text/csv", (".csv",)),
        Kind("zip", "ZIP", "application/zip", (".zip",)),
        Kind("rar", "RAR", "application/vnd.rar", (".rar",)),
        Kind("7z", "7z", "application/x-7z-compressed", (".7z",)),
    )
}
DOCUMENTS = ("pdf", "ofd", "docx", "xlsx", "doc", "xls", "wps", "png", "jpeg", "txt")  # oa, services, hotline
OLE_KINDS = ("doc", "xls", "ppt", "wps")  # one container: the extension tells them apart
TEXT_KINDS = ("txt", "csv")


def _zip_kind(upload) -> str:
    try:
        upload.seek(0)
        with zipfile.ZipFile(upload) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return ""
    if "OFD.xml" in names:
        return "ofd"
    if "[Content_Types].xml" in names:
        prefixes = {name.split("/", 1)[0] for name in names}
        return "docx" if "word" in prefixes else "xlsx" if "xl" in prefixes else "pptx" if "ppt" in prefixes else ""
    return "zip"


def _text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    for encoding in ("utf-8", "gb18030"):
        try:
            head.decode(encoding)
            return True
        except UnicodeDecodeError as error:
            if encoding == "utf-8" and error.start >= len(head) - 3:  # a character cut at the end of the sample
                return True
    return False


def sniff(upload, name: str = "") -> str:
    """What the file is, from its bytes ('' when unknown); OLE and text containers take the
    extension to choose among their kinds."""
    upload.seek(0)
    head = upload.read(HEAD)
    upload.seek(0)
    ext = os.path.splitext(name or "")[1].lower()
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(upload)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith(OLE):
        return next((k for k in OLE_KINDS if ext in KINDS[k].extensions), "doc")
    if _text(head):
        return next((k for k in TEXT_KINDS if ext in KINDS[k].extensions), "txt")
    return ""


def kinds_label(kinds: Iterable[str]) -> str:
    return "、".join(dict.fromkeys(str(KINDS[k].label) for k in kinds))


def _scanner() -> Callable | None:
    path = getattr(settings, "YIWANG_ATTACHMENT_SCANNER", "")
    return import_string(path) if path else None


def eicar_scanner(upload, name: str) -> str:
    """A scan hook for tests and drills: refuses the EICAR test file. A real hook (e.g. clamd)
    takes the same arguments and returns '' or the name of what it found."""
    upload.seek(0)
    found = EICAR in upload.read(HEAD)
    upload.seek(0)
    return "EICAR-Test-File" if found else ""


def attachment_check(upload, *, kinds: Iterable[str], max_bytes: int | None = None, field: str = "files") -> str:
    """Refuse a file that is empty, too large, not of an allowed kind by content, named as
    another kind, or flagged by the virus scan. Returns its kind."""
    kinds = tuple(kinds)
    name = os.path.basename(upload.name or "")
    limit = max_bytes or settings.YIWANG_ATTACHMENT_MAX_BYTES
    if not upload.size:
        raise ValidationError({field: _("附件 %(name)s 是空文件。") % {"name": name}})
    if upload.size > limit:
        raise ValidationError(
            {field: _("附件 %(name)s 超过 %(mb)s MB。") % {"name": name, "mb": round(limit / 1048576, 1)}}
        )
    ext = os.path.splitext(name)[1].lower()
    if not any(ext in KINDS[k].extensions for k in kinds):
        raise ValidationError(
            {field: _("不支持的附件类型：%(name)s（支持 %(kinds)s）") % {"name": name, "kinds": kinds_label(kinds)}}
        )
    kind = sniff(upload, name)
    if not kind:
        raise ValidationError({field: _("附件 %(name)s 的内容无法识别，文件可能已损坏。") % {"name": name}})
    if kind not in kinds or ext not in KINDS[kind].extensions:
        raise ValidationError(
            {field: _("附件 %(name)s 的内容是 %(kind)s，与扩展名不符。") % {"name": name, "kind": KINDS[kind].label}}
        )
    scan = _scanner()
    found = scan(upload, name) if scan else ""
    if found:
        message = _("附件 %(name)s 未通过病毒扫描（%(found)s）。") % {"name": name, "found": found}
        raise ValidationError({field: message})
    return kind


def attachment_create(
    *,
    upload,
    module: str,
    kinds: Iterable[str],
    owner=None,
    unit_id: int | None = None,
    max_bytes: int | None = None,
    field: str = "files",
):
    """Check a file and store it; returns the ``Attachment`` row (the caller links it to its
    record in the same transaction)."""
    from .models import Attachment

    kind = attachment_check(upload, kinds=kinds, max_bytes=max_bytes, field=field)
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    ext = KINDS[kind].extensions[0] if len(KINDS[kind].extensions) == 1 else os.path.splitext(upload.name)[1].lower()
    path = default_storage.save(f"attachments/{module}/{timezone.now():%Y/%m}/{uuid.uuid4().hex}{ext}", upload)
    return Attachment.objects.create(
        module=module,
        name=os.path.basename(upload.name)[:200],
        kind=kind,
        content_type=KINDS[kind].content_type,
        size=upload.size,
        sha256=digest.hexdigest(),
        file=path,
        owner_id=getattr(owner, "pk", None),
        unit_id=unit_id if unit_id is not None else getattr(owner, "acting_unit_id", None),
    )


# --- who may download ----------------------------------------------------------------------------

_viewers: dict[str, Callable] = {}


def register_viewer(module: str, check: Callable) -> None:
    """``check(user, attachment) -> bool``: the module's rule (e.g. whoever may see the case)."""
    _viewers[module] = check


def can_view(user, attachment) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    check = _viewers.get(attachment.module)
    if check is not None:
        return bool(check(user, attachment))
    return attachment.owner_id == user.pk or can_see_unit(user, attachment.unit_id)


def attachment_response(attachment, *, inline: bool = False) -> FileResponse:
    """The stored file with the type found at upload (never the browser's), the original name
    encoded safely (RFC 6266 / 5987) and no sniffing by the browser."""
    try:
        handle = attachment.file.open("rb")
    except (FileNotFoundError, OSError) as error:
        raise Http404(_("附件文件已丢失，请联系平台管理员。")) from error
    safe_inline = inline and attachment.kind in ("pdf", "png", "jpeg", "gif")
    response = FileResponse(
        handle, as_attachment=not safe_inline, filename=attachment.name, content_type=attachment.content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
