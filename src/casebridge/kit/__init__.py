"""Cross-cutting API machinery shared by every domain: errors, auth, ETags, paging, idempotency."""
