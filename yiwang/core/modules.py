"""The module registry: each app registers its tile and menu entry in ``AppConfig.ready()``.

Lower floors never import higher ones; the shell (top bar, navigation, workbench) only
reads this registry. Hooks such as the inbox count are registered the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class Module:
    code: str
    name: str  # Chinese UI name, already marked for translation by the caller
    icon: str  # a bootstrap-icons name, e.g. "people"
    url_name: str | None = None  # None: planned, not yet built
    description: str = ""
    order: int = 100
    # (request) -> list of (label, value, url) figures shown on the workbench tile
    figures: Callable | None = field(default=None, compare=False)
    # (user) -> bool; hide the module from users who may not use it
    visible: Callable | None = field(default=None, compare=False)

    @property
    def url(self) -> str | None:
        if not self.url_name:
            return None
        try:
            return reverse(self.url_name)
        except NoReverseMatch:
            return None


_modules: dict[str, Module] = {}
_inbox_counters: list[Callable] = []


def register(module: Module) -> None:
    _modules[module.code] = module


def all_modules() -> list[Module]:
    """Every registered module, built or planned, whoever looks (usage figures name them)."""
    return sorted(_modules.values(), key=lambda m: (m.order, m.code))


def modules_for(user) -> list[Module]:
    return sorted(
        (m for m in _modules.values() if m.visible is None or m.visible(user)),
        key=lambda m: (m.order, m.code),
    )


def register_inbox_counter(counter: Callable) -> None:
    """``counter(user) -> int``: open to-do items of this user in one module."""
    _inbox_counters.append(counter)


def inbox_count(user) -> int:
    return sum(counter(user) for counter in _inbox_counters)
