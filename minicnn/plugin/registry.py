"""Name -> provider tables for layers, models, datasets, optimizers and schedules, filled by plugins.

One registry per kind. A name belongs to the first plugin that registers it: a second provider is
refused with an error naming both. Which plugin comes first is the precedence rule of
`minicnn.plugin.manager` (what ships with minicnn, then third-party plugins by name). Looking up an unknown
name suggests the closest ones. Names are listed in natural order, numbers by their value and letters
ignoring case, as a reader expects: resnet18, resnet34, resnet50, resnet101.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
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


def natural_key(name: str) -> tuple:
    """Sort key that orders the digits in a name by their value and the letters ignoring case
    ("vgg11" before "vgg16", "resnet18" before "resnet101"); the name itself breaks ties."""
    parts = re.split(r"(\d+)", name.lower())  # text, number, text, ...: the same kind at each position
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts)), name


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
        known = ", ".join(sorted(self._entries, key=natural_key)) or "none"
        raise RegistryError(f"unknown {self.kind} '{name}'{did_you_mean(name, self._entries)} (registered: {known})")

    def names(self, pattern: str = "*") -> list[str]:
        """The registered names matching a shell pattern (ignoring case), in natural order."""
        return sorted((n for n in self._entries if fnmatch.fnmatchcase(n.lower(), pattern.lower())), key=natural_key)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
