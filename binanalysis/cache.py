"""Facts caches: never inspect an unchanged file twice.

:class:`FactsCache` is keyed by (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns), so any
rewrite misses, even one whose mtime was set back; a rename or a new hard link (which move
ctime) costs one more inspection. It is thread-safe, bounded (oldest entries dropped first)
and can be dumped to / loaded from JSON text, so repeated CLI runs benefit too. Where that
text is stored is the caller's business: binanalysis writes no files.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any

from binanalysis.inspector import inspect_keyed
from binanalysis.interface import BinaryFacts, BinaryReadError, VerdictMemo
from binanalysis.reader import CacheKey, stat_key

# Bump whenever inspect() can give a different answer for the same bytes: old caches are
# then ignored instead of serving stale verdicts.
CACHE_VERSION = 7  # 7: ctime in the key; stack-cookie classes
CACHE_FORMAT = "rba-binary-facts"
DEFAULT_MAX_ENTRIES = 200_000


class CacheFormatError(ValueError):
    """Cache text that is corrupt, truncated or from another version."""


class FactsCache:
    """A thread-safe map from a file's identity to its :class:`BinaryFacts`.

    A long-running process holds one and calls :meth:`get_or_inspect`; concurrent callers
    may both inspect a new file once, never more."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._entries: dict[CacheKey, BinaryFacts] = {}
        self._lock = threading.Lock()
        self._max = max_entries
        self.hits = 0
        self.misses = 0
        self.changed = False  # anything added since creation or loads()

    def __len__(self) -> int:
        return len(self._entries)

    def get_or_inspect(self, path: str) -> BinaryFacts:
        """Facts for ``path``, inspecting it only if this exact file is not cached.

        Raises BinaryReadError when the file cannot be read (never cached)."""
        try:
            key = stat_key(os.stat(path))
        except OSError as e:
            raise BinaryReadError(f"cannot stat: {e.strerror or e}") from e
        cached = self.lookup(key, path)
        if cached is not None:
            return cached
        read_key, facts = inspect_keyed(path)
        self.put(read_key, facts)
        return facts

    def lookup(self, key: CacheKey, path: str) -> BinaryFacts | None:
        """The cached facts for ``key``, named ``path``; None (and a miss counted) if absent."""
        with self._lock:
            facts = self._entries.get(key)
            if facts is None:
                self.misses += 1
                return None
            self.hits += 1
        return facts.with_path(path)

    def put(self, key: CacheKey, facts: BinaryFacts) -> None:
        """Remember ``facts`` for the file identified by ``key``."""
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = facts
            self.changed = True
            while len(self._entries) > self._max:
                del self._entries[next(iter(self._entries))]

    def items(self) -> Iterator[tuple[CacheKey, BinaryFacts]]:
        """A snapshot of the entries, oldest first."""
        with self._lock:
            snapshot = list(self._entries.items())
        return iter(snapshot)

    def dumps(self) -> str:
        """The cache as compact JSON text (see :meth:`loads`).

        Files often share identical facts (every shell script; many programs of one
        package), so distinct facts are stored once, without a path, and each entry is
        ``[dev, ino, size, mtime_ns, ctime_ns, index into facts]``."""
        table: dict[str, int] = {}
        facts_list: list[dict[str, Any]] = []
        entries = []
        for key, facts in self.items():
            d = facts.with_path("").to_dict()
            text = json.dumps(d, sort_keys=True)
            index = table.get(text)
            if index is None:
                index = table[text] = len(facts_list)
                facts_list.append(d)
            entries.append([*key, index])
        doc = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "facts": facts_list,
               "entries": entries}  # fmt: skip
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str, max_entries: int = DEFAULT_MAX_ENTRIES) -> FactsCache:
        """A cache from :meth:`dumps` text. Raises CacheFormatError if it is unusable."""
        try:
            doc: Any = json.loads(text)
        except ValueError as e:
            raise CacheFormatError(f"not valid JSON ({e})") from e
        if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT:
            raise CacheFormatError("not an rba binary-facts cache")
        if doc.get("version") != CACHE_VERSION:
            raise CacheFormatError(
                f"written by another rba (cache version {doc.get('version')!r}, "
                f"this one reads {CACHE_VERSION})"
            )
        cache = cls(max_entries)
        memo: VerdictMemo = {}
        try:
            facts = [BinaryFacts.from_dict(d, memo) for d in doc["facts"]]
            for dev, ino, size, mtime_ns, ctime_ns, index in doc["entries"]:
                key = (int(dev), int(ino), int(size), int(mtime_ns), int(ctime_ns))
                if type(index) is not int or not 0 <= index < len(facts):
                    raise ValueError(f"facts index {index!r} out of range")
                cache._entries[key] = facts[index]
        except (KeyError, TypeError, ValueError) as e:
            raise CacheFormatError(f"malformed entry ({e})") from e
        return cache
