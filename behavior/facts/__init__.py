"""Facts about processes and files that the rules use beyond the events (see interface)."""
