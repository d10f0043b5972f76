"""A resource code in a URL: ``101001001/000001`` (it contains a slash)."""

from django.urls import register_converter


class ResourceCodeConverter:
    regex = r"[1-3][0-9]{8}/[0-9]{6}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ResourceCodeConverter, "rescode")
