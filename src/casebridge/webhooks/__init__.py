"""Outbound webhooks: signed deliveries of business events to URLs that subscribe to them."""
