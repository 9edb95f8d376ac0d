"""Base errors of the behavior layer."""

from __future__ import annotations


class RbaError(Exception):
    """Base error of the behavior layer; its message is one line a user can act on."""


class UsageError(RbaError):
    """Bad input from the user (arguments, files, configuration): exit status 2."""
