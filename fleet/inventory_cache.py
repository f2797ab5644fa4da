"""Validated inventories kept on disk, so that an unchanged file is not parsed or validated
again: a technician's `fleet scan SITE` otherwise spends most of its own time on the YAML
and on building and running pydantic's validators for every site.

An entry is found by the inventory's path and used only when its key matches: the file's
exact bytes (sha256), fleet's version, the source of the modules that decide what a valid
inventory is (any change to a rule is a new key), pydantic's, msgspec's and Python's
versions. Any
edit of the file changes the key, so a broken inventory is parsed and reported as before.
The `*_file` paths an inventory names are resolved against its folder and the file system:
those resolutions are checked again on every use.

The entry is JSON (never pickle): the validated inventory as msgspec encodes fleet.inventory's
structs, decoded into them again by msgspec (which checks the types and least lengths, not
the rules: the values were validated when the entry was written), without pydantic or the
YAML reader; an inventory that would not read back as itself (JSON has no infinity) is not
kept.
It holds what the inventory holds, and the inventory never holds a secret
(only where one is read from). An entry that cannot be read, is damaged, was written by
another version, or could have been written by another user (a shared or world-writable
folder) is a miss, never an error; one that cannot be written is skipped.

FLEET_INVENTORY_CACHE=off turns the cache off; another value is the folder to keep it in
(default: the user's cache folder, e.g. ~/.cache/fleet/inventories).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import msgspec

CACHE_ENV = "FLEET_INVENTORY_CACHE"
OFF = ("off", "0", "no", "false")
FORMAT = 2  # the layout of an entry; a new layout is a new key (2: msgspec's encoding)

# The modules (in fleet's folder) whose code decides what a valid inventory is and what it
# validates to; fleet/__init__.py holds fleet's version.
RULE_MODULES = (
    "__init__.py",
    "inventory.py",
    "inventory_models.py",
    "inventory_cache.py",
    "yaml_source.py",
    "credentials.py",
    "errors.py",
    "net.py",
    "results.py",
)

M = TypeVar("M", bound=msgspec.Struct)
log = logging.getLogger("fleet.inventory_cache")


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
    """Python's, pydantic's and msgspec's versions and the source of RULE_MODULES (fleet's
    version with them), as one digest; None (no cache) when a source cannot be read."""
    digest = hashlib.sha256(f"{FORMAT}\0{sys.version}\0{msgspec.__version__}".encode())
    # pydantic's version without importing it (a hit needs no pydantic): its version module,
    # which names the pydantic-core it was released with (pydantic checks that one).
    pydantic = importlib.util.find_spec("pydantic")
    origin = pydantic.origin if pydantic is not None else None
    package = Path(__file__).parent
    sources = [Path(origin).parent / "version.py"] if origin else []
    if not sources:
        return None
    sources.extend(package / name for name in RULE_MODULES)
    for source in sources:
        try:
            digest.update(source.read_bytes())
        except OSError:  # installed without its source: no cache
            return None
        digest.update(b"\0")
    return digest.hexdigest()


class Entry:
    """The cache entry of one inventory file, for the file's bytes as just read."""

    def __init__(self, where: Path, inventory_path: str, content: bytes, rules: str) -> None:
        # fsencode: a path's own bytes, also a name that is not UTF-8 (POSIX keeps those
        # bytes as surrogates in the str, which .encode() refuses)
        absolute = os.fsencode(os.path.abspath(inventory_path))
        self.path = where / f"{hashlib.sha256(absolute).hexdigest()[:32]}.json"
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
                return msgspec.json.decode(handle.read(), type=root)
        except FileNotFoundError:  # nothing kept yet
            return None
        except Exception as exc:  # a cache that cannot be used is only a miss, whatever went wrong
            log.debug("inventory cache: %s not used: %r", self.path, exc)
            return None

    def save(self, inventory: msgspec.Struct, files: dict[str, str]) -> None:
        """Keep the validated inventory (and how its `*_file` paths resolved) for next time;
        a value JSON cannot hold, or a folder that cannot be written, keeps nothing."""
        from fleet.atomic_file import replacing_bytes

        try:
            body = msgspec.json.encode(inventory)
            # JSON has no infinity or NaN: msgspec writes null, which an optional field
            # (a site's `site_s: .inf`) would read back as "not set". Keep only what reads
            # back as the inventory it is (a decode: a few ms for 1,000 sites, on a miss).
            if msgspec.json.decode(body, type=type(inventory)) != inventory:
                raise ValueError("the entry would not read back as the inventory it holds")
            head = json.dumps({"files": sorted(files.items())})
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Replaced whole: another process reads the old entry or the new one. Bytes: the
            # same on Windows.
            with replacing_bytes(self.path, prefix=".") as handle:
                handle.write(f"{json.dumps(self.key)}\n{head}\n".encode() + body)
        except (OSError, TypeError, ValueError, msgspec.EncodeError, msgspec.DecodeError) as exc:
            log.debug("inventory cache: %s not written: %r", self.path, exc)


def _written_by_us(status: os.stat_result) -> bool:
    """The file is ours and neither its group nor others may write it (POSIX; Windows has no
    owner id here: the user's own cache folder there is private to the user already)."""
    if not hasattr(os, "geteuid"):
        return True
    return status.st_uid == os.geteuid() and not status.st_mode & 0o022
