"""Test doubles, for tests only (nothing in the product imports them): an in-process LLM provider
(`llm.ScriptedProvider`), a process sandbox backend (`process_backend`), a clock (`clock`)."""
