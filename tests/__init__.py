"""cnngraph test suite."""
