"""A small path language for decoded payloads, as the device catalogue and overrides write it.

`TempC_DS`, `temperature.value`, `messages[?measurementId=4097].measurementValue`, `history[*]`,
`readings[0].temperature`: keys separated by `.`; `[N]` an index, `[*]` every element of a list,
`[?key=value]` the elements of a list whose `key` equals `value` (a number or a string).
A path yields every value it reaches: none (absent), one, or several (ambiguous for a single
reading, the elements for a list of readings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_SEGMENT = re.compile(r"([^.\[\]]+)?((?:\[[^\]]*\])*)")
_SELECTOR = re.compile(r"\[([^\]]*)\]")


class PathError(ValueError):
    pass


@dataclass(frozen=True)
class _Step:
    kind: str  # "key", "index", "all", "where"
    key: str = ""
    index: int = 0
    value: object = None


def _literal(raw: str) -> object:
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        return raw.strip("'\"")


def _selector(raw: str) -> _Step:
    if raw == "*":
        return _Step("all")
    if raw.startswith("?") and "=" in raw:
        key, _, value = raw[1:].partition("=")
        if not key:
            raise PathError(f"empty key in [{raw}]")
        return _Step("where", key=key, value=_literal(value))
    if raw.lstrip("-").isdigit():
        return _Step("index", index=int(raw))
    raise PathError(f"unknown selector [{raw}]")


@lru_cache(maxsize=1024)
def compile_path(path: str) -> tuple[_Step, ...]:
    """The steps of `path`; PathError when it is not a path of this language."""
    if not path or len(path) > 200:
        raise PathError("a path is 1 to 200 characters")
    steps: list[_Step] = []
    for part in path.split("."):
        match = _SEGMENT.fullmatch(part)
        if match is None or not part:
            raise PathError(f"bad segment {part!r} in {path!r}")
        name, selectors = match.groups()
        if name:
            steps.append(_Step("key", key=name))
        elif not steps:
            raise PathError(f"{path!r} starts with a selector")
        steps += [_selector(raw) for raw in _SELECTOR.findall(selectors)]
    return tuple(steps)


def _same(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return a == b


def find(data: object, path: str) -> list[object]:
    """Every value `path` reaches in `data` (JSON: dicts, lists, scalars)."""
    current = [data]
    for step in compile_path(path):
        found: list[object] = []
        for node in current:
            if step.kind == "key":
                if isinstance(node, dict) and step.key in node:
                    found.append(node[step.key])
            elif isinstance(node, list):
                if step.kind == "all":
                    found += node
                elif step.kind == "index":
                    if -len(node) <= step.index < len(node):
                        found.append(node[step.index])
                else:
                    found += [
                        item
                        for item in node
                        if isinstance(item, dict) and step.key in item and _same(item[step.key], step.value)
                    ]
        current = found
    return current
