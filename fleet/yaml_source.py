"""YAML loading that remembers where every value came from (file, line, column).

PyYAML's parser gives each event a start mark; we build plain Python data from the event
stream and keep a map from each value's path to its position, so validation errors can
name `inventory.yaml:14:9`. Duplicate keys, which PyYAML silently collapses, are errors
here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from fleet.errors import Position, SourceError, YamlLoadError

Path = tuple[str | int, ...]
# libyaml and pure-Python PyYAML give marks of two classes with the same fields.
Mark = Any


def _packed(mark: Mark) -> int:
    """A parser mark as one small int (line and column), so that the parse tree and its
    marks can be freed before validation: a 10,000-site inventory stays light."""
    return (int(mark.line) << 24) | min(int(mark.column), 0xFFFFFF)


@dataclass
class SourceMap:
    """Where values (and their keys) start, by path; turned into Positions only when an
    error needs one."""

    values: dict[Path, int] = field(default_factory=dict)
    keys: dict[Path, int] = field(default_factory=dict)
    record: bool = True  # False: positions are worked out later, only if an error needs one

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
_INT_TAG = "tag:yaml.org,2002:int"
_OCTAL = re.compile(r"[-+]?0[0-7_]+")  # YAML 1.1's octal integers, as its resolver reads them


def _position(mark: Mark | None) -> Position:
    """A YAML mark as a 1-based position (the start of the file when there is none)."""
    return Position(mark.line + 1, mark.column + 1) if mark is not None else Position(1, 1)


class LazySourceMap(SourceMap):
    """A source map that parses the text again, with positions, the first time an error
    needs one: a valid inventory (the usual case) never pays for positions."""

    def __init__(self, text: str, file: str) -> None:
        super().__init__(record=False)
        self._text: str | None = text
        self._file = file

    def find(self, path: Path) -> Position:
        if self._text is not None:
            text, self._text = self._text, None
            try:
                _, full = load_yaml(text, self._file)
            except YamlLoadError:  # cannot happen: the same text parsed once already
                full = SourceMap()
            self.values, self.keys = full.values, full.keys
        return super().find(path)


def load_yaml(text: str, file: str, *, positions: bool = True) -> tuple[Any, SourceMap]:
    """Parse YAML text into plain data and a source map; raise YamlLoadError on any problem.

    Built from the parser's event stream (libyaml when available), never from a node tree:
    a 10,000-site inventory never holds a second copy of itself in parse nodes and marks.
    With positions=False the map is lazy: positions are worked out only if asked for.
    """
    if not positions:
        try:
            data, _ = _load(text, file, SourceMap(record=False))
        except YamlLoadError:
            return load_yaml(text, file)  # report its problems with every position
        return data, LazySourceMap(text, file)
    return _load(text, file, SourceMap())


def _load(text: str, file: str, smap: SourceMap) -> tuple[Any, SourceMap]:
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    errors: list[SourceError] = []
    builder = _Builder(file, smap, errors)
    try:
        data = builder.run(_events(loader_class(text)))
    except yaml.MarkedYAMLError as exc:
        pos = _position(exc.problem_mark or exc.context_mark)
        problem = exc.problem or exc.context or "not valid YAML"
        near = _key_near(text, pos.line)
        raise YamlLoadError([SourceError(file, pos, near, f"not valid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise YamlLoadError(
            [SourceError(file, Position(1, 1), "", f"not valid YAML: {exc}")]
        ) from None
    if errors:
        raise YamlLoadError(errors)
    return data, smap


def _events(loader: Any) -> Iterator[Any]:
    """The parser's events, as yaml.parse gives them, one C call each (libyaml's get_event
    and PyYAML's both give None after the last event)."""
    try:
        yield from iter(loader.get_event, None)
    finally:
        loader.dispose()


# A YAML alias may point at a huge or self-referencing tree ("billion laughs"). Each alias
# is expanded into a copy of what its anchor holds, so a bomb builds far more values than
# the file has events: stop when the values built outnumber the events read by this factor
# (past a small floor), before copying.
ALIAS_EXPANSION_LIMIT = 20
ALIAS_FLOOR = 10_000

_BAD = object()  # a scalar that could not be read (the error is already recorded)
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class _Open:
    """A mapping or sequence being built."""

    value: dict[str, Any] | list[Any]
    path: Path
    anchor: str | None
    start: int  # the value count when it opened, to know its size when it closes
    key: Any = None  # mapping: the key waiting for its value (None: expecting a key)
    key_pending: bool = False
    skip_value: bool = False  # the key was refused: build its value, then drop it


class _Builder:
    def __init__(self, file: str, smap: SourceMap, errors: list[SourceError]) -> None:
        self.file = file
        self.smap = smap
        self.errors = errors
        self.constructor = yaml.constructor.SafeConstructor()
        self.resolver = yaml.resolver.Resolver()
        # The resolver's table, to know without calling it that a scalar is text: one
        # that is quoted, or plain and starting with a character no implicit tag claims.
        self.implicit: dict[Any, Any] = self.resolver.yaml_implicit_resolvers
        self.plain_text_fast = not self.resolver.yaml_path_resolvers and None not in self.implicit
        self.plain_tags: dict[str, str] = {}
        self.count = 0  # values built, aliases expanded
        self.events = 0  # values actually written in the file
        self.anchors: dict[str, tuple[Any, int]] = {}  # name -> (value, size)
        self.open_anchors: set[str] = set()
        self.stack: list[_Open] = []

    def error(self, mark: Mark | None, path: Path, message: str) -> None:
        self.errors.append(SourceError(self.file, _position(mark), format_path(path), message))

    # -- the event loop -------------------------------------------------------------------

    def run(self, events: Any) -> Any:
        root: Any = None
        documents = 0
        scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
        for event in events:
            kind = type(event)  # the parsers give these classes, never subclasses
            if kind is scalar_event:  # most events: tested first
                root = self._scalar_event(event, root)
            elif isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    self.error(
                        event.start_mark,
                        (),
                        "an inventory is one YAML document (found a second '---')",
                    )
                    return root
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                path = self._child_path(event.start_mark)
                container: dict[str, Any] | list[Any] = (
                    {} if isinstance(event, yaml.MappingStartEvent) else []
                )
                self._count(event.start_mark, path, 1)
                if event.anchor:
                    self.open_anchors.add(event.anchor)
                self.stack.append(_Open(container, path, event.anchor, self.count))
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                done = self.stack.pop()
                if done.anchor:
                    self.open_anchors.discard(done.anchor)
                    self.anchors[done.anchor] = (done.value, self.count - done.start + 1)
                root = self._place(done.value, root)
            elif kind is alias_event:
                root = self._alias_event(event, root)
        return root

    # -- placing values -------------------------------------------------------------------

    def _child_path(self, mark: Mark) -> Path:
        """The path of the value that starts here (and record where it starts). Without
        positions no path is needed: any error makes the loader parse again with them."""
        if not self.smap.record:
            return ()
        if not self.stack:
            path: Path = ()
        else:
            parent = self.stack[-1]
            if isinstance(parent.value, list):
                path = (*parent.path, len(parent.value))
            elif parent.key_pending:
                path = (*parent.path, str(parent.key))
            else:
                return parent.path  # a key (scalar or not): positions come from the key
        self.smap.values.setdefault(path, _packed(mark))
        return path

    def _place(self, value: Any, root: Any) -> Any:
        """Put a finished value into its parent (or make it the document's root)."""
        if not self.stack:
            return value
        parent = self.stack[-1]
        if isinstance(parent.value, list):
            parent.value.append(value)
            return root
        if not parent.key_pending:
            self._take_key(parent, value)
            return root
        if not parent.skip_value:
            parent.value[str(parent.key)] = value
        parent.key, parent.key_pending, parent.skip_value = None, False, False
        return root

    def _take_key(self, parent: _Open, key: Any, mark: Mark | None = None) -> None:
        assert isinstance(parent.value, dict)  # noqa: S101 - only mappings take keys
        parent.key_pending = True
        if key is _BAD:
            parent.skip_value = True  # already reported
            return
        if key is _MERGE_TAG:
            self.error(mark, parent.path, "YAML merge keys (<<) are not supported")
            parent.skip_value = True
            return
        if key is None or not isinstance(key, str | int | float | bool):
            self.error(mark, parent.path, "keys must be plain text")
            parent.skip_value = True
            return
        parent.key = str(key)
        child = (*parent.path, parent.key)
        if parent.key in parent.value:
            first = self.smap.keys.get(child)
            where = f" (first at line {(first >> 24) + 1})" if first is not None else ""
            self.error(mark, child, f"duplicate key '{parent.key}'{where}")
            parent.skip_value = True
            return
        if mark is not None and self.smap.record:
            self.smap.keys[child] = _packed(mark)

    def _count(self, mark: Mark, path: Path, size: int) -> None:
        self.events += 1
        self.count += size
        if self.count > ALIAS_FLOOR and self.count > ALIAS_EXPANSION_LIMIT * self.events:
            raise YamlLoadError(
                [
                    SourceError(
                        self.file,
                        _position(mark),
                        format_path(path),
                        "too many values (a YAML alias bomb?)",
                    )
                ]
            )

    # -- scalars and aliases ----------------------------------------------------------------

    def _scalar_event(self, event: yaml.ScalarEvent, root: Any) -> Any:
        parent = self.stack[-1] if self.stack else None
        is_key = parent is not None and isinstance(parent.value, dict) and not parent.key_pending
        path = self._child_path(event.start_mark) if self.smap.record else ()
        self._count(event.start_mark, path, 1)
        value = self._scalar_value(event, path)
        if event.anchor:
            self.anchors[event.anchor] = (value, 1)
        if is_key:
            assert parent is not None  # noqa: S101
            self._take_key(parent, value, event.start_mark)
            return root
        return self._place(None if value is _BAD else value, root)

    def _scalar_value(self, event: yaml.ScalarEvent, path: Path) -> Any:
        """The value of a scalar, _MERGE_TAG for `<<`, or _BAD (reported) when unreadable."""
        tag = event.tag
        if tag is None or tag == "!":
            plain = bool(event.implicit[0])
            resolve: Any = self.resolver.resolve  # untyped in the stubs
            if not self.plain_text_fast:
                tag = str(resolve(yaml.ScalarNode, event.value, (plain, not plain)))
            elif not plain or event.value[:1] not in self.implicit:
                return event.value  # what the resolver would say: text
            else:  # ports, addresses, numbers: the same text resolves alike
                tag = self.plain_tags.get(event.value)
                if tag is None:
                    tag = str(resolve(yaml.ScalarNode, event.value, (True, False)))
                    self.plain_tags[event.value] = tag
        if tag == _STR_TAG:  # most values: text, as written
            return event.value
        if tag == _MERGE_TAG:
            return _MERGE_TAG
        if tag == _INT_TAG and event.implicit[0] and _OCTAL.fullmatch(event.value):
            # YAML 1.1 reads `port: 025` as 21: never what someone who wrote it meant
            self.error(
                event.start_mark,
                path,
                f"bad value '{event.value}': YAML reads a number written with a leading 0 as "
                f"octal (this one as {int(event.value.replace('_', ''), 8)}): write it "
                "without the 0, or quote it if it is text",
            )
            return _BAD
        start: Mark = event.start_mark
        end: Mark = event.end_mark
        node = yaml.ScalarNode(tag, event.value, start, end, event.style)
        try:
            return self.constructor.construct_object(node, deep=True)
        except Exception as exc:
            # PyYAML's constructors raise whatever their parsing hits: ValueError for a
            # date like 2024-02-30 or an integer of 5,000 digits, AttributeError for
            # `!!timestamp x`, KeyError for `!!bool maybe`. A bad value, not a crash.
            if isinstance(exc, yaml.YAMLError | ValueError):
                problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [""])[0]
            else:
                problem = f"not a valid {tag.rpartition(':')[2]}"
            shown = event.value if len(event.value) <= 40 else event.value[:39] + "…"
            self.error(event.start_mark, path, f"bad value '{shown}': {problem}")
            return _BAD

    def _alias_event(self, event: yaml.AliasEvent, root: Any) -> Any:
        parent = self.stack[-1] if self.stack else None
        is_key = parent is not None and isinstance(parent.value, dict) and not parent.key_pending
        path = self._child_path(event.start_mark)
        name = event.anchor or ""
        if name in self.open_anchors:
            self.error(event.start_mark, path, "a YAML alias refers to itself")
            value: Any = None
        elif name not in self.anchors:
            self.error(event.start_mark, path, f"unknown YAML alias '*{name}'")
            value = None
        else:
            held, size = self.anchors[name]
            self._count(event.start_mark, path, size)
            # a copy, as if written out again: later edits of one use must not change another
            value = copy.deepcopy(held)
        if is_key:
            assert parent is not None  # noqa: S101
            self._take_key(parent, value, event.start_mark)
            return root
        return self._place(value, root)
