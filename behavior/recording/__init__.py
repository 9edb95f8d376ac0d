"""Traces at the behaviour level: recording a window, loading it back, replaying it."""
