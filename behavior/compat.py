"""The one place for what the standard library lacks before Python 3.11 (rba runs on 3.9
and later): ``tomllib``, which is ``tomli`` before 3.11 (a conditional dependency)."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

__all__ = ["tomllib"]
