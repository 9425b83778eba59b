"""Contacts: people and companies (clients, suppliers, other parties)."""
