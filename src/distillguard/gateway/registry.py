"""Named plug-ins: the one place each kind of gateway extension is registered and looked up by name.

Gateway actions (:mod:`distillguard.gateway.actions`, named by a policy tier's ``action:``) and state backends
(:mod:`distillguard.gateway.state`, named by the URL scheme of ``--state``) each have one :class:`Registry`.
Register in code with the kind's decorator, or from an installed package through an entry point of the
registry's group (loaded the first time a name is not found), e.g. in a plug-in's ``pyproject.toml``::

    [project.entry-points."distillguard.actions"]
    tarpit = "my_package.actions:Tarpit"   # the module registers it on import
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import metadata
from typing import Generic, TypeVar

from distillguard.errors import DistillguardError

T = TypeVar("T")
log = logging.getLogger("distillguard.gateway")


class RegistryError(DistillguardError, ValueError):
    """A name registered twice, or a name nothing is registered under."""


class ConformanceError(DistillguardError, AssertionError):
    """A plug-in breaks the contract its kind's conformance check tests (the message names the rule)."""


class Registry(Generic[T]):
    """Plug-ins of one kind by name (names are case-sensitive)."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group  # the entry-point group plug-in packages register under
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, *names: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under each of ``names``."""
        if not names:
            raise RegistryError(f"register a {self.kind} under at least one name")

        def decorate(item: T) -> T:
            for name in names:
                if not isinstance(name, str) or not name:
                    raise RegistryError(f"{self.kind} names are non-empty strings, got {name!r}")
                if name in self._items and self._items[name] is not item:
                    raise RegistryError(f"{self.kind} {name!r} is already registered "
                                        f"({_describe(self._items[name])})")
                self._items[name] = item
            return item

        return decorate

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests registering throw-away plug-ins)."""
        self._items.pop(name, None)

    def get(self, name: str) -> T | None:
        """What ``name`` is registered as; installed plug-ins' entry points are loaded on the first miss."""
        item = self._items.get(name)
        if item is None and not self._loaded:
            self._load_entry_points()
            item = self._items.get(name)
        return item

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._items))

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def _load_entry_points(self) -> None:
        self._loaded = True
        for entry in metadata.entry_points(group=self.group):
            try:
                loaded = entry.load()
            except Exception:  # noqa: BLE001 - one broken plug-in must not hide the others
                log.exception("%s plug-in %r (%s) failed to load", self.kind, entry.name, entry.value)
                continue
            if entry.name not in self._items:
                self.register(entry.name)(loaded)


def _describe(item: object) -> str:
    module = getattr(item, "__module__", None)
    name = getattr(item, "__qualname__", None) or type(item).__qualname__
    return f"{module}.{name}" if module else str(name)


__all__ = ["ConformanceError", "Registry", "RegistryError"]
