"""Workflows: event-triggered, versioned definitions whose steps call linked services and change records."""
