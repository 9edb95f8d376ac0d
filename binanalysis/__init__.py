"""binanalysis: facts about ELF and PE files (DEP/NX, stack cookies, ASLR/PIE, RELRO, ...).

A pure library that imports nothing else of ours. Start with :func:`inspect`; hold a
:class:`FactsCache` in long-running processes; use :func:`inspect_many` for batches.
Importing this package does not import pyelftools or pefile (pefile loads on the first PE).
"""

from binanalysis.batch import inspect_many
from binanalysis.cache import CacheFormatError, FactsCache
from binanalysis.inspector import inspect
from binanalysis.interface import (
    BinaryFacts,
    BinaryParseError,
    BinaryReadError,
    FileFormat,
    Relro,
    Verdict,
)

__all__ = [
    "BinaryFacts",
    "BinaryParseError",
    "BinaryReadError",
    "CacheFormatError",
    "FactsCache",
    "FileFormat",
    "Relro",
    "Verdict",
    "inspect",
    "inspect_many",
]
