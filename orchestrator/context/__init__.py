"""Contexts: what an RLM explores instead of reading. Path resolution lives in `paths`."""
