"""Tiny HEAR plugins used by the tests (importable as ``plugins.<name>`` with tests/ on the path)."""
