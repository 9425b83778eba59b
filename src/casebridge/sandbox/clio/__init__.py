"""A faithful, fault-injecting local emulator of the Clio Manage API v4 (docs/clio-sandbox.md).

``casebridge sandbox clio`` serves it; :func:`create_app` builds it for tests and the demo.
"""

from casebridge.sandbox.clio.app import create_app
from casebridge.sandbox.clio.state import SandboxConfig, SandboxState

__all__ = ["SandboxConfig", "SandboxState", "create_app"]
