"""The assessment window: running sources, folding events, and the timeline."""
