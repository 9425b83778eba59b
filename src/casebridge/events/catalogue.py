"""The business event catalogue (docs/events.md): every event type, and the entity it is about.

THE one list: webhook patterns and workflow triggers are validated against it (a type missing here is
refused as a typo), and tests check it against docs/events.md. A domain that adds an event type adds it
here and documents it there.
"""

from __future__ import annotations

EVENT_TYPES: dict[str, str] = {
    "contact.created": "contact",
    "contact.updated": "contact",
    "contact.archived": "contact",
    "contact.restored": "contact",
    "matter.created": "matter",
    "matter.updated": "matter",
    "matter.status_changed": "matter",
    "matter.archived": "matter",
    "matter.restored": "matter",
    "matter.note_added": "matter",
    "document.created": "document",
    "document.version_added": "document",
    "document.updated": "document",
    "document.deleted": "document",
    "document.restored": "document",
    "document.purged": "document",
    "activity.created": "activity",
    "activity.updated": "activity",
    "activity.submitted": "activity",
    "activity.approved": "activity",
    "activity.rejected": "activity",
    "activity.billed": "activity",
    "activity.deleted": "activity",
    "user.created": "user",
    "user.updated": "user",
    "settings.updated": "setting",
    "alert.raised": "alert",
    "alert.acknowledged": "alert",
    "linked_service.created": "linked_service",
    "linked_service.updated": "linked_service",
    "linked_service.deleted": "linked_service",
    "workflow.created": "workflow",
    "workflow.updated": "workflow",
    "workflow.deleted": "workflow",
    "workflow_instance.started": "workflow_instance",
    "workflow_instance.completed": "workflow_instance",
    "workflow_instance.failed": "workflow_instance",
    "workflow_instance.cancelled": "workflow_instance",
    "workflow_instance.retried": "workflow_instance",
    "webhook.created": "webhook",
    "webhook.updated": "webhook",
    "webhook.deleted": "webhook",
    "webhook.disabled": "webhook",
    "webhook.secret_rotated": "webhook",
}

# Integration plumbing: subscribable by webhooks, but not workflow triggers (a workflow reacting to
# workflows, webhooks or linked services invites loops).
PLUMBING = frozenset({"linked_service", "workflow", "workflow_instance", "webhook"})

WORKFLOW_TRIGGERS: dict[str, str] = {
    t: entity for t, entity in EVENT_TYPES.items() if t.split(".", 1)[0] not in PLUMBING
}
