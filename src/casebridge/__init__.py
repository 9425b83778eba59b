"""Casebridge: API-first case management kept in two-way sync with practice-management systems."""

__version__ = "0.1.0"
