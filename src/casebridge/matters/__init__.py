"""Matters: numbering, status, client and participants, fee estimates."""
