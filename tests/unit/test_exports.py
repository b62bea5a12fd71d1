"""Public names are pinned: changing them is a deliberate act."""

from __future__ import annotations

import streamline_core
import streamline_testing

CORE = {
    "Engine",
    "Workflow",
    "StepContext",
    "StepConfig",
    "StepDefaults",
    "Retry",
    "WorkflowRun",
    "StepState",
    "RunStatus",
    "StepStatus",
    "RunPage",
    "Event",
    "Retention",
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
}


def test_streamline_core_exports() -> None:
    assert set(streamline_core.__all__) == CORE
    for name in CORE:
        assert getattr(streamline_core, name) is not None


def test_streamline_testing_exports() -> None:
    assert set(streamline_testing.__all__) == {"FakeClock", "InMemoryStore"}


def test_error_codes_and_statuses() -> None:
    from streamline_core import ErrorCode as C

    expected = {
        streamline_core.WorkflowNotFoundError: (C.WORKFLOW_NOT_FOUND, 404),
        streamline_core.StepNotFoundError: (C.STEP_NOT_FOUND, 404),
        streamline_core.StepTimeoutError: (C.STEP_TIMEOUT, 408),
        streamline_core.WorkflowCancelledError: (C.WORKFLOW_CANCELLED, 409),
        streamline_core.InvalidStateError: (C.INVALID_STATE, 400),
        streamline_core.ValidationError: (C.VALIDATION_ERROR, 400),
        streamline_core.DataCorruptionError: (C.DATA_CORRUPTION, 500),
        streamline_core.MaxRetriesExceededError: (C.MAX_RETRIES_EXCEEDED, 500),
    }
    for cls, (code, status) in expected.items():
        err = cls("x", run_id="r", step_id="s")
        assert (err.code, err.status, err.run_id, err.step_id) == (code, status, "r", "s")
        assert isinstance(err, streamline_core.WorkflowError)
    assert C.DEAD_LETTERED == "DEAD_LETTERED"
    assert C.STEP_FAILED == "STEP_FAILED"


def test_control_flow_signals_escape_except_exception() -> None:
    from streamline_core.errors import ControlFlowSignal, SuspendSignal

    assert not issubclass(ControlFlowSignal, Exception)
    assert issubclass(SuspendSignal, BaseException)
