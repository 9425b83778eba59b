"""ORM models, one file per table or small group, all re-exported here (Alembic reads Base.metadata)."""

from casebridge.models.activity import Activity
from casebridge.models.base import Base
from casebridge.models.contact import Contact, ContactAddress, ContactEmail, ContactPartyType, ContactPhone
from casebridge.models.document import Document, DocumentVersion
from casebridge.models.event import Event
from casebridge.models.job import Job, RecurringSlot
from casebridge.models.linked_service import LinkedService
from casebridge.models.matter import Matter, MatterParticipant
from casebridge.models.platform import Counter, FirmSetting, IdempotencyKey
from casebridge.models.subscription import EventDelivery, EventSubscription
from casebridge.models.sync import (
    Connection,
    SyncConflict,
    SyncInboxEntry,
    SyncJournal,
    SyncLink,
    SyncRateBudget,
    SyncRemoteWebhook,
    SyncStream,
)
from casebridge.models.user import ApiToken, User
from casebridge.models.webhook import Webhook, WebhookDelivery
from casebridge.models.workflow import (
    Alert,
    MatterNote,
    Workflow,
    WorkflowEvaluation,
    WorkflowInstance,
    WorkflowStepLog,
    WorkflowVersion,
)

__all__ = [
    "Activity",
    "Alert",
    "ApiToken",
    "Base",
    "Connection",
    "Contact",
    "ContactAddress",
    "ContactEmail",
    "ContactPartyType",
    "ContactPhone",
    "Counter",
    "Document",
    "DocumentVersion",
    "Event",
    "EventDelivery",
    "EventSubscription",
    "FirmSetting",
    "IdempotencyKey",
    "Job",
    "LinkedService",
    "Matter",
    "MatterNote",
    "MatterParticipant",
    "RecurringSlot",
    "SyncConflict",
    "SyncInboxEntry",
    "SyncJournal",
    "SyncLink",
    "SyncRateBudget",
    "SyncRemoteWebhook",
    "SyncStream",
    "User",
    "Webhook",
    "WebhookDelivery",
    "Workflow",
    "WorkflowEvaluation",
    "WorkflowInstance",
    "WorkflowStepLog",
    "WorkflowVersion",
]
