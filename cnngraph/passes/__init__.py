"""Compiler passes over the expanded graph: validate, check, infer (shapes and costs), sizes."""
