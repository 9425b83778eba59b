"""Business events through a transactional outbox.

Invariants:
- ``record_event`` only queues an event on the session; the queue is written as ``events`` rows inside
  the same transaction, just before it commits. A change that rolls back leaves no event.
- Event ids are monotonic in commit order: on PostgreSQL the rows are inserted under a transaction-level
  advisory lock taken just before commit, so a reader paging ``after=<id>`` never skips a row that
  commits late with a lower id; SQLite has a single writer, which gives the same order.
"""

from casebridge.events.outbox import diff, record_event

__all__ = ["diff", "record_event"]
