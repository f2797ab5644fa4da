"""YAML loading that remembers where every value came from (file, line, column).

PyYAML's composer gives each node a start mark; we build plain Python data from the
node tree and keep a map from each value's path to its position, so validation errors
can name `inventory.yaml:14:9`. Duplicate keys, which PyYAML silently collapses, are
errors here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True)
class SourceError:
    """One problem found in a source file, already in words a technician understands."""

    file: str
    position: Position | None
    path: str  # e.g. sites[2].devices[0].smtp.port ("" for the whole file)
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.position is not None:
            where = f"{where}:{self.position.line}:{self.position.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


def _packed(mark: yaml.Mark) -> int:
    """A parser mark as one small int (line and column), so that the parse tree and its
    marks can be freed before validation: a 10,000-site inventory stays light."""
    return (mark.line << 24) | min(mark.column, 0xFFFFFF)


@dataclass
class SourceMap:
    """Where values (and their keys) start, by path; turned into Positions only when an
    error needs one."""

    values: dict[Path, int] = field(default_factory=dict)
    keys: dict[Path, int] = field(default_factory=dict)

    def find(self, path: Path) -> Position:
        """The position of a path, or of its nearest ancestor that has one (else 1:1)."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            packed = self.keys.get(prefix, self.values.get(prefix))
            if packed is not None:
                return Position((packed >> 24) + 1, (packed & 0xFFFFFF) + 1)
        return Position(1, 1)


def format_path(path: Path) -> str:
    """Render a path as `sites[2].devices[0].smtp.port`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class YamlLoadError(Exception):
    def __init__(self, errors: list[SourceError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


_KEY_RE = re.compile(r"^\s*(?:-\s+)?([A-Za-z_][\w.-]*)\s*:")


def _key_near(text: str, line: int) -> str:
    """The YAML key on or just above a line: where a syntax error most likely sits."""
    lines = text.splitlines()
    for number in range(min(line, len(lines)), 0, -1):
        match = _KEY_RE.match(lines[number - 1])
        if match:
            return f"near '{match.group(1)}' (line {number})"
    return ""


_STR_TAG = "tag:yaml.org,2002:str"


def _pos(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def load_yaml(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse YAML text into plain data and a source map; raise YamlLoadError on any problem."""
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available
    try:
        root = yaml.compose(text, Loader=loader_class)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Position(mark.line + 1, mark.column + 1) if mark is not None else Position(1, 1)
        problem = exc.problem or exc.context or "not valid YAML"
        near = _key_near(text, pos.line)
        raise YamlLoadError([SourceError(file, pos, near, f"not valid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise YamlLoadError(
            [SourceError(file, Position(1, 1), "", f"not valid YAML: {exc}")]
        ) from None
    smap = SourceMap()
    errors: list[SourceError] = []
    if root is None:
        return None, smap
    builder = _Builder(file, smap, errors)
    data = builder.build(root, ())
    if errors:
        raise YamlLoadError(errors)
    return data, smap


# A YAML alias may point at a huge or self-referencing tree ("billion laughs"). Aliases
# re-use nodes, so a bomb builds far more values than the file has nodes: stop when the
# values built outnumber the distinct nodes by this factor (past a small floor).
ALIAS_EXPANSION_LIMIT = 20
ALIAS_FLOOR = 10_000


_BAD = object()  # a scalar that could not be read (the error is already recorded)


class _Builder:
    def __init__(self, file: str, smap: SourceMap, errors: list[SourceError]) -> None:
        self.file = file
        self.smap = smap
        self.errors = errors
        self.constructor = yaml.constructor.SafeConstructor()
        self.count = 0
        self.nodes: set[int] = set()
        self.stack: set[int] = set()

    def error(self, node: yaml.Node, path: Path, message: str) -> None:
        self.errors.append(SourceError(self.file, _pos(node), format_path(path), message))

    def scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        """The value of a scalar, or _BAD (reported) when it cannot be read."""
        if node.tag == _STR_TAG:  # most values: text, as written
            return node.value
        # SafeConstructor handles the other tags: int, float, bool, null, timestamp.
        try:
            return self.constructor.construct_object(node, deep=True)
        except Exception as exc:
            # PyYAML's constructors raise whatever their parsing hits: ValueError for a
            # date like 2024-02-30 or an integer of 5,000 digits, AttributeError for
            # `!!timestamp x`, KeyError for `!!bool maybe`. A bad value, not a crash.
            if isinstance(exc, yaml.YAMLError | ValueError):
                problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [""])[0]
            else:
                problem = f"not a valid {node.tag.rpartition(':')[2]}"
            shown = node.value if len(node.value) <= 40 else node.value[:39] + "…"
            self.error(node, path, f"bad value '{shown}': {problem}")
            return _BAD

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        self.nodes.add(id(node))
        if self.count > ALIAS_FLOOR and self.count > ALIAS_EXPANSION_LIMIT * len(self.nodes):
            raise YamlLoadError(
                [
                    SourceError(
                        self.file,
                        _pos(node),
                        format_path(path),
                        "too many values (a YAML alias bomb?)",
                    )
                ]
            )
        self.smap.values.setdefault(path, _packed(node.start_mark))
        if isinstance(node, yaml.ScalarNode):
            value = self.scalar(node, path)
            return None if value is _BAD else value
        if id(node) in self.stack:
            self.error(node, path, "a YAML alias refers to itself")
            return None
        self.stack.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self.stack.discard(id(node))
        self.error(node, path, "unsupported YAML node")
        return None

    def mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.error(key_node, path, "YAML merge keys (<<) are not supported")
                continue
            key = self.scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if key is _BAD:
                continue  # already reported
            if key is None or not isinstance(key, str | int | float | bool):
                self.error(key_node, path, "keys must be plain text")
                continue
            key = str(key)
            child = (*path, key)
            if key in out:
                first = self.smap.keys.get(child)
                where = f" (first at line {(first >> 24) + 1})" if first is not None else ""
                self.error(key_node, child, f"duplicate key '{key}'{where}")
                continue
            self.smap.keys[child] = _packed(key_node.start_mark)
            out[key] = self.build(value_node, child)
        return out
