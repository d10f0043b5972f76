"""An adapter in the shape of Alibaba Cloud SMS (阿里云短信, dysmsapi 2017-05-25, RPC style).

How their API works, and what we do with it:

* **Signing** (their "RPC signature V1"): every parameter, including ``AccessKeyId``,
  ``SignatureMethod=HMAC-SHA1``, ``SignatureVersion=1.0``, a fresh ``SignatureNonce`` and the
  UTC ``Timestamp``, is percent-encoded per RFC 3986 (UTF-8; only ``A–Z a–z 0–9 - _ . ~`` left
  as is, so a space is ``%20``, ``*`` is ``%2A``), sorted by name and joined ``k=v&…``; the
  string to sign is ``METHOD&%2F&`` + percent-encode(that query); the signature is base64 of
  HMAC-SHA1 keyed with ``AccessKeySecret + "&"``. ``sign()`` reproduces the examples
  published in Alibaba's documentation (see the tests). We POST the signed parameters as a form.
* **Templates only**: Aliyun sends a template registered (and approved) in its console, by
  ``TemplateCode``, with ``TemplateParam`` values and the registered ``SignName``. The gateway
  option ``templates`` maps our template codes to theirs — ``{"exam-notice": "SMS_1234"}``, or
  ``{"exam-notice": {"code": "SMS_1234", "params": {"姓名": "name"}}}`` when their variable
  names (ASCII) differ from our placeholders.
* **Batches**: ``SendBatchSms`` takes up to 100 numbers of one template (``PhoneNumberJson``,
  ``SignNameJson``, ``TemplateParamJson``); one response ``Code`` covers the whole call and
  one ``BizId`` names it. A message's provider id is ``"<BizId>:<mobile>"``, which is also what
  a receipt carries, so a number appears at most once per call. If a batch is refused for
  something wrong with one message (an illegal number, a bad parameter), nothing was sent, and
  its messages are sent again one by one with ``SendSms`` so one bad row fails alone.
* **Codes** → our results: ``OK`` accepted; the codes in ``TEMPORARY_CODES`` (flow control,
  daily/monthly caps, balance, account and credential problems, their system errors) are
  temporary; any other ``isv.*`` code is about the message or template and permanent; any
  other code, HTTP 5xx, an unreadable answer, a refused connection or a timeout is temporary.
* **Receipts**: their "HTTP batch push" posts a JSON list (``SmsReport``: ``phone_number``,
  ``success``, ``err_code``, ``err_msg``, ``biz_id``, ``out_id``, ``report_time`` in Beijing
  time) and expects ``{"code": 0, "msg": "接收成功"}``. Their documentation describes **no
  signature** on this push, so we verify what we can: the receipt URL configured in their
  console carries a secret ``?token=…`` (option ``receipt_token``) that must match; a push
  without it raises ``BadSignature``. Restricting the source addresses at the reverse proxy
  is a sensible addition in production.

The endpoint comes from the settings (``endpoint``), so the tests point it at a local server.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from django.utils.translation import gettext as _

from yiwang.core.httpclient import HttpClient, TransportError

from ..text import clean_value
from .base import BadReceipt, BadSignature, Gateway, OutboundSms, Receipt, ReceiptStatus, SendResult, SendStatus

API_VERSION = "2017-05-25"
DEFAULT_ENDPOINT = "https://dysmsapi.aliyuncs.com/"
BEIJING = ZoneInfo("Asia/Shanghai")

TEMPORARY_CODES = frozenset(
    {
        "isv.BUSINESS_LIMIT_CONTROL",  # flow control (per number per minute/hour/day)
        "isv.DAY_LIMIT_CONTROL",  # the account's daily cap set in their console
        "isv.MONTH_LIMIT_CONTROL",
        "isv.AMOUNT_NOT_ENOUGH",  # balance
        "isv.OUT_OF_SERVICE",  # suspended for arrears
        "isv.ACCOUNT_NOT_EXISTS",
        "isv.ACCOUNT_ABNORMAL",
        "isv.PRODUCT_UN_SUBSCRIPT",
        "isv.PRODUCT_UNSUBSCRIBE",
        "isv.DENY_IP_RANGE",
        "isv.SYSTEM_ERROR",
        "isp.SYSTEM_ERROR",
        "isp.RAM_PERMISSION_DENY",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "InvalidTimeStamp.Expired",
        "SignatureNonceUsed",
        "Throttling",
        "Throttling.User",
        "ServiceUnavailable",
        "InternalError",
    }
)
# Permanent codes about one message of a batch: the batch is retried one by one.
PER_MESSAGE_CODES = frozenset(
    {
        "isv.MOBILE_NUMBER_ILLEGAL",
        "isv.INVALID_PARAMETERS",
        "isv.PARAM_LENGTH_LIMIT",
        "isv.PARAM_NOT_SUPPORT_URL",
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "isv.TEMPLATE_PARAMS_ILLEGAL",
        "isv.BLACK_KEY_CONTROL_LIMIT",
        "isv.SMS_CONTENT_ILLEGAL",
        "isv.INVALID_JSON_PARAM",
    }
)


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8, as Aliyun's signature requires."""
    return quote(value, safe="~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))


def sign(params: Mapping[str, str], secret: str, method: str = "POST") -> str:
    """Aliyun RPC signature V1 (HMAC-SHA1) of ``params`` (without ``Signature``)."""
    string_to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def classify(code: str) -> SendStatus:
    """Our status for one of their response codes."""
    if code == "OK":
        return SendStatus.ACCEPTED
    if code in TEMPORARY_CODES or not code.startswith("isv."):
        return SendStatus.TEMPORARY_FAILURE
    return SendStatus.PERMANENT_FAILURE


class AliyunGateway(Gateway):
    max_batch = 100  # SendBatchSms takes at most 100 numbers

    def __init__(
        self,
        *,
        code: str = "aliyun",
        access_key_id: str,
        access_key_secret: str,
        endpoint: str = DEFAULT_ENDPOINT,
        region: str = "cn-hangzhou",
        templates: Mapping[str, str | Mapping] | None = None,
        receipt_token: str = "",
        timeout: float = 10.0,
        clock: Callable[[], dt.datetime] | None = None,
        **kw,
    ):
        super().__init__(code=code, **kw)
        self.access_key_id, self.access_key_secret = access_key_id, access_key_secret
        self.region, self.receipt_token = region, receipt_token
        self.templates = dict(templates or {})
        parts = urlsplit(endpoint)
        self.http = HttpClient(f"{parts.scheme}://{parts.netloc}", timeout=timeout)
        self.path = parts.path or "/"
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    # --- sending ---------------------------------------------------------------------------

    def template_for(self, sms: OutboundSms) -> tuple[str, dict[str, str]]:
        """Their template code and the renaming of our placeholder names to their variables."""
        mapped = self.templates.get(sms.template)
        if isinstance(mapped, Mapping):
            return str(mapped.get("code", "")), dict(mapped.get("params") or {})
        if mapped:
            return str(mapped), {}
        if sms.template.startswith("SMS_"):  # already one of theirs
            return sms.template, {}
        return "", {}

    def send_chunk(self, chunk: list[OutboundSms]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(chunk)
        calls: dict[str, list[list[int]]] = {}  # their template code → calls (indexes, numbers unique)
        for index, sms in enumerate(chunk):
            template_code, _names = self.template_for(sms)
            if not template_code:
                results[index] = self.failure(
                    sms, SendStatus.PERMANENT_FAILURE, "yiwang.TEMPLATE_NOT_MAPPED", _("该模板未在阿里云通道登记")
                )
            elif not sms.sign_name:
                results[index] = self.failure(
                    sms, SendStatus.PERMANENT_FAILURE, "yiwang.SIGN_NAME_MISSING", _("缺少短信签名")
                )
            else:
                groups = calls.setdefault(template_code, [[]])
                if any(chunk[i].mobile == sms.mobile for i in groups[-1]):
                    groups.append([])
                groups[-1].append(index)
        for template_code, groups in calls.items():
            for group in groups:
                for index, result in zip(group, self._send_call(template_code, [chunk[i] for i in group])):
                    results[index] = result
        return results

    def _params(self, sms: OutboundSms) -> dict[str, str]:
        _code, names = self.template_for(sms)
        return {names.get(name, name): clean_value(value) for name, value in sms.values.items()}

    def _send_call(self, template_code: str, smses: list[OutboundSms]) -> list[SendResult]:
        if len(smses) == 1:
            sms = smses[0]
            params = {
                "Action": "SendSms",
                "PhoneNumbers": sms.mobile,
                "SignName": sms.sign_name,
                "TemplateCode": template_code,
                "TemplateParam": json.dumps(self._params(sms), ensure_ascii=False),
                "OutId": sms.id[:255],
            }
        else:
            params = {
                "Action": "SendBatchSms",
                "PhoneNumberJson": json.dumps([s.mobile for s in smses]),
                "SignNameJson": json.dumps([s.sign_name for s in smses], ensure_ascii=False),
                "TemplateCode": template_code,
                "TemplateParamJson": json.dumps([self._params(s) for s in smses], ensure_ascii=False),
            }
        code, message, biz_id = self._call(params)
        status = classify(code)
        if status == SendStatus.ACCEPTED and biz_id:
            return [self.accepted(sms, f"{biz_id}:{sms.mobile}") for sms in smses]
        if status == SendStatus.ACCEPTED:
            status, code, message = SendStatus.TEMPORARY_FAILURE, "yiwang.NO_BIZ_ID", _("阿里云应答缺少 BizId")
        elif status == SendStatus.PERMANENT_FAILURE and code in PER_MESSAGE_CODES and len(smses) > 1:
            return [result for sms in smses for result in self._send_call(template_code, [sms])]
        return [self.failure(sms, status, code, message) for sms in smses]

    def signed_params(self, params: Mapping[str, str]) -> dict[str, str]:
        """``params`` with the common parameters and ``Signature`` added."""
        full = {
            "AccessKeyId": self.access_key_id,
            "Format": "JSON",
            "RegionId": self.region,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": self.clock().astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
            **params,
        }
        full["Signature"] = sign(full, self.access_key_secret, "POST")
        return full

    def _call(self, params: Mapping[str, str]) -> tuple[str, str, str]:
        """POST one signed call; returns (code, message, BizId) — ours for transport trouble."""
        body = canonical_query(self.signed_params(params)).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "Accept": "application/json"}
        try:
            response = self.http.request("POST", self.path, body=body, headers=headers)
        except TransportError as error:
            return f"yiwang.{error.kind.upper()}", str(error), ""
        if response.status >= 500:
            return f"HTTP_{response.status}", _("阿里云返回 HTTP %(status)s") % {"status": response.status}, ""
        try:
            data = json.loads(response.body)
            return str(data["Code"]), str(data.get("Message", "")), str(data.get("BizId") or "")
        except (ValueError, KeyError, TypeError):
            return "yiwang.BAD_RESPONSE", _("阿里云应答无法解析（HTTP %(status)s）") % {"status": response.status}, ""

    # --- receipts --------------------------------------------------------------------------

    def parse_receipts(
        self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str] | None = None
    ) -> list[Receipt]:
        """Receipts of an ``SmsReport`` push; the URL's ``token`` must match ``receipt_token``."""
        token = (query or {}).get("token") or ""
        if not self.receipt_token or not hmac.compare_digest(token.encode(), self.receipt_token.encode()):
            raise BadSignature(_("回执令牌校验失败"))
        try:
            items = json.loads(body)
            if not isinstance(items, list):
                raise TypeError("SmsReport is a JSON list")
            return [self._receipt(item) for item in items]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise BadReceipt(_("回执格式无法解析")) from error

    def _receipt(self, item: Mapping) -> Receipt:
        success = item["success"] in (True, "true", "True", 1)
        when = item.get("report_time") or ""
        return Receipt(
            provider_id=f"{item['biz_id']}:{item['phone_number']}",
            # Their receipt is final (the carrier has stopped trying), so a failure is permanent.
            status=ReceiptStatus.DELIVERED if success else ReceiptStatus.PERMANENT_FAILURE,
            error_code=str(item.get("err_code") or ""),
            error_message=str(item.get("err_msg") or ""),
            time=dt.datetime.strptime(when, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING) if when else None,
            mobile=str(item["phone_number"]),
            id=str(item.get("out_id") or ""),
        )

    def receipt_ack(self) -> bytes:
        return json.dumps({"code": 0, "msg": "接收成功"}, ensure_ascii=False).encode()
