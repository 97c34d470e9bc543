"""Helpers for tests: reference implementations and shared samples (test-only dependencies)."""
