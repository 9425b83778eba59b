"""Alerts and matter notes: what workflows (and people) leave on a matter."""
