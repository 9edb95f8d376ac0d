"""Reusable helpers for end-to-end tests: network namespaces, real Debian servers and
clients, and running ``rba assess`` around a scenario. Not test modules themselves."""
