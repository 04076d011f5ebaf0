"""Backends turn a compiled Model into something to read or run: a summary table, JSON."""
