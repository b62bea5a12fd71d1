"""Streamline: durable workflows for Python services, on the database you already run.

Public API (see API.md): :class:`Engine`, :class:`Workflow`, :class:`StepContext`,
the run model, errors, hooks and helpers.
"""

import logging

from streamline_core.clock import Clock
from streamline_core.context import StepContext
from streamline_core.debounce import Debounce
from streamline_core.defaults import configure, create_workflow, default_engine
from streamline_core.definition import Retry, StepConfig, StepDefaults
from streamline_core.engine import Engine
from streamline_core.errors import (
    ChildWorkflowError,
    ConflictError,
    DataCorruptionError,
    ErrorCode,
    InvalidStateError,
    LeaseLostError,
    MaxRetriesExceededError,
    NonRetriableError,
    StepNotFoundError,
    StepTimeoutError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
    WorkflowCancelledError,
    WorkflowError,
    WorkflowNotFoundError,
)
from streamline_core.events import Event
from streamline_core.flow_control import Concurrency, RateLimit
from streamline_core.hooks import GIVE_UP, hookimpl, hookspec
from streamline_core.parallel import Settled, execute_parallel
from streamline_core.recurrence import Recurrence
from streamline_core.retention import Retention
from streamline_core.run import RunPage, RunStatus, StepState, StepStatus, WorkflowRun
from streamline_core.schedule_info import ScheduleInfo
from streamline_core.store import Store
from streamline_core.waits import WaitResolution, get_wait_resolution
from streamline_core.webhooks import Hook, HookResumeResult, create_hook, resume_hook
from streamline_core.workflow import Workflow

# A library logs, the application decides where it goes: without this, Python's
# last-resort handler would print step failures to stderr of apps that set up no logging.
logging.getLogger("streamline").addHandler(logging.NullHandler())

__all__ = [
    "Engine",
    "Workflow",
    "StepContext",
    "StepConfig",
    "StepDefaults",
    "Retry",
    "WorkflowRun",
    "StepState",
    "Retention",
    "RunStatus",
    "StepStatus",
    "RunPage",
    "Event",
    "WaitResolution",
    "get_wait_resolution",
    "Settled",
    "Hook",
    "HookResumeResult",
    "execute_parallel",
    "create_hook",
    "resume_hook",
    "create_workflow",
    "configure",
    "default_engine",
    "hookimpl",
    "hookspec",
    "GIVE_UP",
    "Store",
    "Clock",
    "ErrorCode",
    "WorkflowError",
    "WorkflowNotFoundError",
    "StepNotFoundError",
    "StepTimeoutError",
    "WorkflowCancelledError",
    "InvalidStateError",
    "ValidationError",
    "DataCorruptionError",
    "MaxRetriesExceededError",
    "NonRetriableError",
    "ChildWorkflowError",
    "StoreError",
    "ConflictError",
    "LeaseLostError",
    "StoreUnavailableError",
    "ScheduleInfo",
    "Recurrence",
    "Debounce",
    "Concurrency",
    "RateLimit",
]
