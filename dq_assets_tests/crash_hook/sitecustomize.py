"""Crash injection for the crash tests: on PYTHONPATH of a `dagster` process they start, this
SIGKILLs the process right after Dagster logged (and stored) the event that `DQ_CRASH_AFTER`
names, `<step key>|<EVENT_TYPE>|<text in the event's message>`: an output boundary such as
`stage_orders|HANDLED_OUTPUT|"staging"`. A test-only file: the package never imports it."""

import os

_SPEC = os.environ.get("DQ_CRASH_AFTER")

if _SPEC:
    import signal

    import dagster._core.events as _events

    _STEP, _TYPE, _TEXT = _SPEC.split("|", 2)
    _log_step_event = _events.log_step_event

    def _log_then_die(step_context, event, batch_metadata):
        _log_step_event(step_context, event, batch_metadata)
        if event.step_key == _STEP and event.event_type_value == _TYPE and _TEXT in (event.message or ""):
            os.kill(os.getpid(), signal.SIGKILL)

    _events.log_step_event = _log_then_die
