"""Unit tests: pure modules only, no processes, threads or sleeps.

A package so that its module names (test_errors, ...) do not clash with tests/integration's.
"""
