"""Experiments built from the algorithms: transfer between tasks."""
