"""Validated inventories kept on disk, so that an unchanged file is not parsed or validated
again: a technician's `fleet scan SITE` otherwise spends most of its own time on the YAML
and on building and running pydantic's validators for every site.

An entry is found by the inventory's path and used only when its key matches: the file's
exact bytes (sha256), fleet's version, the source of the modules that decide what a valid
inventory is (any change to a rule is a new key), pydantic's and Python's versions. Any
edit of the file changes the key, so a broken inventory is parsed and reported as before.
The `*_file` paths an inventory names are resolved against its folder and the file system:
those resolutions are checked again on every use.

The entry is JSON (never pickle): the validated models' fields, rebuilt as pydantic's
`model_construct` builds a model (no validation: the values were validated when the entry
was written). It holds what the inventory holds, and the inventory never holds a secret
(only where one is read from). An entry that cannot be read, is damaged, was written by
another version, or could have been written by another user (a shared or world-writable
folder) is a miss, never an error; one that cannot be written is skipped.

FLEET_INVENTORY_CACHE=off turns the cache off; another value is the folder to keep it in
(default: the user's cache folder, e.g. ~/.cache/fleet/inventories).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import logging
import os
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

CACHE_ENV = "FLEET_INVENTORY_CACHE"
OFF = ("off", "0", "no", "false")
FORMAT = 1  # the layout of an entry; a new layout is a new key

# The modules (in fleet's folder) whose code decides what a valid inventory is and what it
# validates to; fleet/__init__.py holds fleet's version.
RULE_MODULES = (
    "__init__.py",
    "inventory.py",
    "inventory_cache.py",
    "yaml_source.py",
    "credentials.py",
    "errors.py",
    "net.py",
    "results.py",
)

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger("fleet.inventory_cache")


class _Uncacheable(Exception):
    """A value the entry's JSON cannot hold as it is: that inventory is not cached."""


def folder() -> Path | None:
    """Where entries are kept, or None when the cache is off."""
    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen.lower() in OFF:
        return None
    if chosen:
        return Path(chosen)
    import platformdirs

    return Path(platformdirs.user_cache_dir("fleet")) / "inventories"


def fingerprint() -> str | None:
    """Python's and pydantic's versions and the source of RULE_MODULES (fleet's version
    with them), as one digest; None (no cache) when a module's source cannot be read."""
    import pydantic
    import pydantic_core

    digest = hashlib.sha256(
        f"{FORMAT}\0{sys.version}\0{pydantic.VERSION}\0{pydantic_core.__version__}".encode()
    )
    package = Path(__file__).parent
    for name in RULE_MODULES:
        try:
            digest.update((package / name).read_bytes())
        except OSError:  # installed without its source: no cache
            return None
        digest.update(b"\0")
    return digest.hexdigest()


class Entry:
    """The cache entry of one inventory file, for the file's bytes as just read."""

    def __init__(self, where: Path, inventory_path: str, content: bytes, rules: str) -> None:
        absolute = os.path.abspath(inventory_path)
        self.path = where / f"{hashlib.sha256(absolute.encode()).hexdigest()[:32]}.json"
        self.key = hashlib.sha256(rules.encode() + b"\0" + content).hexdigest()

    @classmethod
    def open(cls, inventory_path: str, content: bytes) -> Entry | None:
        """The entry for this file and content, or None when the cache is off."""
        where = folder()
        rules = fingerprint() if where is not None else None
        if where is None or rules is None:
            return None
        return cls(where, inventory_path, content, rules)

    def load(self, root: type[M], still_resolves: Callable[[dict[str, str]], bool]) -> M | None:
        """The validated inventory kept for this key, or None (a miss): nothing kept, another
        key, a damaged entry, or a `*_file` path that resolves elsewhere now."""
        try:
            # Not through a symbolic link, and only a file no other user could have written:
            # an entry is rebuilt without validation.
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as handle:
                if not _written_by_us(os.fstat(fd)):
                    log.debug("inventory cache: %s not used: others could write it", self.path)
                    return None
                first = handle.readline()
                if json.loads(first) != self.key:
                    return None
                head = json.loads(handle.readline())
                if not still_resolves(dict(head["files"])):
                    return None
                return _decode(handle.read(), root)
        except FileNotFoundError:  # nothing kept yet
            return None
        except Exception as exc:  # a cache that cannot be used is only a miss, whatever went wrong
            log.debug("inventory cache: %s not used: %r", self.path, exc)
            return None

    def save(self, model: BaseModel, files: dict[str, str]) -> None:
        """Keep the validated inventory (and how its `*_file` paths resolved) for next time;
        a value JSON cannot hold, or a folder that cannot be written, keeps nothing."""
        import tempfile

        try:
            body = _encode(model)
            head = json.dumps({"files": sorted(files.items())})
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".", suffix=".tmp")
        except (_Uncacheable, OSError, ValueError) as exc:
            log.debug("inventory cache: %s not written: %r", self.path, exc)
            return
        try:
            with os.fdopen(fd, "wb") as handle:  # the same bytes on Windows
                handle.write(f"{json.dumps(self.key)}\n{head}\n{body}".encode())
            os.replace(temp, self.path)  # another process reads the old entry or the new one
        except OSError as exc:
            log.debug("inventory cache: %s not written: %r", self.path, exc)
            with contextlib.suppress(OSError):
                os.unlink(temp)


def _written_by_us(status: os.stat_result) -> bool:
    """The file is ours and neither its group nor others may write it (POSIX; Windows has no
    owner id here: the user's own cache folder there is private to the user already)."""
    if not hasattr(os, "geteuid"):
        return True
    return status.st_uid == os.geteuid() and not status.st_mode & 0o022


# ---- the models as JSON ------------------------------------------------------------------
#
# A model is {"m": class name, "v": [its fields' values in field order], "s": [the fields
# that were set]}; a model met before is {"r": its index} (devices with equal settings share
# one validated object, and still do when rebuilt); an enum member is {"e": class, "v":
# value}; a mapping is {"d": [[key, value], ...]}. Every JSON object is one of these, so
# json.loads rebuilds the tree bottom-up in one pass (its object_hook). Models are numbered
# in the order they are completed, which is the order json.loads completes them in.


_PLAIN = (str, int, float, bool, type(None))  # as JSON has them (not their subclasses)


def _encode(model: BaseModel) -> str:
    numbers: dict[int, int] = {}
    names: dict[type[BaseModel], tuple[str, ...]] = {}

    def encode(value: Any) -> Any:
        kind = type(value)
        if kind in _PLAIN:  # most values: first
            return value
        if isinstance(value, BaseModel):
            seen = numbers.get(id(value))
            if seen is not None:
                return {"r": seen}
            fields = names.get(kind)
            if fields is None:
                fields = names[kind] = tuple(kind.model_fields)
            held = value.__dict__
            encoded = {
                "m": kind.__qualname__,
                "v": [encode(held[name]) for name in fields],
                "s": list(value.model_fields_set),
            }
            if value.__pydantic_extra__ or value.__pydantic_private__:
                raise _Uncacheable(f"{kind.__qualname__} holds more than its fields")
            numbers[id(value)] = len(numbers)
            return encoded
        if isinstance(value, enum.Enum):
            return {"e": kind.__qualname__, "v": value.value}
        if kind is list:
            return [encode(item) for item in value]
        if kind is dict and all(type(key) is str for key in value):
            return {"d": [[key, encode(item)] for key, item in value.items()]}
        raise _Uncacheable(f"a {kind.__name__} value")

    return json.dumps(encode(model), separators=(",", ":"))


def _decode(text: bytes, root: type[M]) -> M:
    models, enums = _classes(root)
    fields = {name: tuple(cls.model_fields) for name, cls in models.items()}
    built: list[BaseModel] = []
    setattr_ = object.__setattr__  # the models are frozen

    def rebuild(obj: dict[str, Any]) -> Any:
        if "m" in obj:
            # What model_construct does with every field given, without its per-field
            # search for aliases and defaults (a 1,000-site inventory has 5,000 models).
            cls = models[obj["m"]]
            model = cls.__new__(cls)
            setattr_(model, "__dict__", dict(zip(fields[obj["m"]], obj["v"], strict=True)))
            setattr_(model, "__pydantic_fields_set__", set(obj["s"]))
            setattr_(model, "__pydantic_extra__", None)
            setattr_(model, "__pydantic_private__", None)
            built.append(model)
            return model
        if "r" in obj:
            return built[obj["r"]]
        if "e" in obj:
            return enums[obj["e"]](obj["v"])
        return dict(obj["d"])

    model = json.loads(text, object_hook=rebuild)
    if type(model) is not root:
        raise ValueError(f"the entry holds a {type(model).__name__}, not a {root.__name__}")
    return model


def _classes(root: type[BaseModel]) -> tuple[dict[str, type[BaseModel]], dict[str, type[Any]]]:
    """The model and enum classes an inventory can hold, by name (from the fields' types)."""
    models: dict[str, type[BaseModel]] = {}
    enums: dict[str, type[Any]] = {}
    read: set[str] = set()  # the models whose fields were looked at
    todo: list[Any] = [root]
    while todo:
        kind = todo.pop()
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            known = models.setdefault(kind.__qualname__, kind)
            if known is not kind:
                raise ValueError(f"two models named {kind.__qualname__}")
            if kind.__pydantic_post_init__ or kind.__private_attributes__:
                raise ValueError(f"{kind.__qualname__} is more than its fields")
            if kind.__qualname__ not in read:
                read.add(kind.__qualname__)
                todo.extend(field.annotation for field in kind.model_fields.values())
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):
            if enums.setdefault(kind.__qualname__, kind) is not kind:
                raise ValueError(f"two enums named {kind.__qualname__}")
        else:  # list[...], dict[...], X | None, Literal[...]: what they are made of
            todo.extend(typing.get_args(kind))
    return models, enums
