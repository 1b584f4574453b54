"""Name -> provider tables for layers, models, datasets, optimizers and schedules, filled by plugins.

One registry per kind. A name belongs to the first plugin that registers it: a second provider is
refused with an error naming both. Which plugin comes first is the precedence rule of
`minicnn.plugin.manager` (what ships with minicnn, then third-party plugins by name). Looking up an unknown
name suggests the closest ones.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Callable


class RegistryError(LookupError):
    """An unknown or duplicate layer, model, dataset, optimizer or schedule name."""


@dataclass(frozen=True)
class Entry:
    """One registered layer class, or model, dataset, optimizer or schedule factory."""

    kind: str
    name: str
    target: Callable
    plugin: str
    description: str = ""
    input_size: tuple | None = None
    example: dict = field(default_factory=dict)
    default_lr: float | None = None  # optimizers: the learning rate when none is given


def did_you_mean(name: str, candidates) -> str:
    """"; did you mean 'a', 'b'?" for the candidates closest to `name` (a case-only difference
    always counts), or "" when none is close."""
    candidates = list(candidates)
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.7)
    close += [n for n in candidates if n.lower() == name.lower() and n not in close]
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, entry: Entry) -> None:
        existing = self._entries.get(entry.name)
        if existing is not None:
            raise RegistryError(
                f"{self.kind} '{entry.name}' from plugin '{entry.plugin}' is refused: plugin "
                f"'{existing.plugin}' already provides a {self.kind} of that name and keeps it"
            )
        self._entries[entry.name] = entry

    def get(self, name: str) -> Entry:
        if name in self._entries:
            return self._entries[name]
        known = ", ".join(sorted(self._entries)) or "none"
        raise RegistryError(f"unknown {self.kind} '{name}'{did_you_mean(name, self._entries)} (registered: {known})")

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n.lower(), pattern.lower()))

    def __contains__(self, name: str) -> bool:
        return name in self._entries
