"""Linked services: named external endpoints with their auth, for workflows, widgets and Smart Plans."""
