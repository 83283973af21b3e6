"""What a run prints on the console (`dagster asset materialize`, `dagster job execute`, and
the compute logs of runs in `dagster dev`): each failure once, then one line with the gate's
verdict.

Dagster's default console logger prints every event at DEBUG (about 380 lines for one day) and
a failed step's stack trace twice (with the step and again with the run), around the lines
that say what is wrong. This logger prints the warehouse's own lines (check failures with
their reproducing SQL, the gate's decisions), a failed step once, in one line when the error
is one the warehouse raised on purpose and with its stack trace when it is not, how many steps
did not run because of it, and at the end of the run a one-line summary:

    dq_assets gate FAILED: 2025-01-12 refused (raw/orders:manifest_amount_sum, ...); marts kept as they were

`DQ_LOG_LEVEL=DEBUG` shows every event as Dagster's logger would. Dagster stores every event in
its event log whatever this prints, so the UI shows them all.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import dagster as dg

from dq_assets.dagster_private import EXPECTED_ERROR_CLASSES
from dq_assets.rules.history import day_ranges

LOG_LEVEL_ENV = "DQ_LOG_LEVEL"
NAME = "dq_assets"
_CHECK_LINE = re.compile(r"^\[(ERROR|WARN)\] (\S+) (\S+): (\S+) failed \((ERROR|WARN)\): observed (.*?)(?:, expected|; sample keys|$)")
_GATE_FAILED = re.compile(r"^gate FAILED for (\S+): (.*)$")
_GATE_PASSED = re.compile(r"^gate passed for (.*)$")
_NOT_EXECUTING = re.compile(r"^Dependencies for step (\S+) (?:failed|were not executed).*Not executing\.$", re.S)
_SKIPPING = re.compile(r"^Skipping step (\S+) due to skipped dependencies")
# errors the warehouse raises on purpose: their message says it all, no stack trace needed
_EXPECTED_ERRORS = EXPECTED_ERROR_CLASSES


@dataclass
class RunSummary:
    """What the run said, gathered from its log lines, for the last line."""

    partitions: str = ""
    passed: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # "asset:check" -> observed (ERROR)
    warnings: int = 0
    failed_steps: dict[str, str] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)

    def line(self, success: bool) -> str:
        where = f" for {self.partitions}" if self.partitions else ""
        if self.refused:
            refused = "; ".join(f"{k} refused ({why})" for k, why in sorted(self.refused.items()))
            passed = f"{day_ranges(self.passed)} passed; " if self.passed else ""
            return f"{NAME} gate FAILED: {passed}{refused}; refused days keep their marts as they were"
        if self.passed and success:
            warn = f", {self.warnings} WARN check(s) failed" if self.warnings else ""
            return f"{NAME} gate PASSED for {day_ranges(self.passed)}{warn}; marts published"
        if success:
            return f"{NAME} run succeeded{where}"
        causes = [f"{name} ({observed})" for name, observed in self.errors.items()]
        by_message: dict[str, list[str]] = {}
        for step, message in self.failed_steps.items():
            if not message.startswith("blocking check"):
                by_message.setdefault(message, []).append(step)
        causes += [f"{steps[0]}{f' (and {len(steps) - 1} more steps)' if len(steps) > 1 else ''}: {message}"
                   for message, steps in by_message.items()]
        because = "; ".join(causes) or "see the errors above"
        if self.passed:  # the gate passed, something after it failed
            return f"{NAME} run FAILED after the gate passed for {day_ranges(self.passed)}: {because}"
        return f"{NAME} gate NOT REACHED{where}: {because}; marts kept as they were"


# Dagster may build the run's loggers more than once (the run and its steps); what a run said
# is kept per run, for its last line.
_SUMMARIES: dict[str, RunSummary] = {}


class GateConsoleHandler(logging.Handler):
    def __init__(self, level: int, stream=None):
        super().__init__(level=logging.DEBUG)
        self.threshold = level
        self.stream = stream or sys.stderr
        self.summary = RunSummary()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.render(record)
            if text is not None:
                self.stream.write(text + "\n")
                self.stream.flush()
        except Exception:  # noqa: BLE001 (a logger must never break the run)
            self.handleError(record)

    def render(self, record: logging.LogRecord) -> str | None:
        meta = getattr(record, "dagster_meta", None) or {}
        self.summary = _SUMMARIES.setdefault(meta.get("run_id") or "", RunSummary())
        event = meta.get("dagster_event")
        message = str(meta.get("orig_message") or record.getMessage())
        step = meta.get("step_key") or ""
        self._note_partitions(meta.get("job_tags") or {})
        if event is None:
            return self._user_line(record, step, message)
        kind = event.event_type.name
        if kind == "STEP_FAILURE":
            return self._step_failure(step, event)
        if kind in ("RUN_SUCCESS", "RUN_FAILURE"):
            _SUMMARIES.pop(meta.get("run_id") or "", None)
            return self.summary.line(success=kind == "RUN_SUCCESS")
        if self.threshold <= logging.DEBUG or record.levelno >= logging.WARNING:
            return _format(record, step, message)
        return None

    def _user_line(self, record, step: str, message: str) -> str | None:
        if _SKIPPING.match(message) and self.threshold > logging.DEBUG:
            return None  # a step with nothing to do (a check of an asset this run did not write)
        m = _NOT_EXECUTING.match(message)
        if m:  # Dagster's line per step held back by a failure: counted, said once at the end
            self.summary.not_run.append(m.group(1))
            return _format(record, step, message) if self.threshold <= logging.DEBUG else None
        m = _CHECK_LINE.match(message)
        if m:
            severity, asset, _partition, check, _, observed = m.groups()
            if severity == "ERROR":
                self.summary.errors.setdefault(f"{asset}:{check}", observed)
            else:
                self.summary.warnings += 1
        m = _GATE_FAILED.match(message)
        if m:
            self.summary.refused[m.group(1)] = m.group(2)
        m = _GATE_PASSED.match(message)
        if m:
            self.summary.passed = _days(m.group(1))
        if record.levelno < self.threshold:
            return None
        return _format(record, step, message)

    def _step_failure(self, step: str, event) -> str:
        error = event.step_failure_data.error if event.step_failure_data else None
        if error is None:
            return f"{_now()} {step} FAILED"
        cls = error.cls_name or ""
        first = (error.message or "").strip()
        if any(first.startswith(e) for e in _EXPECTED_ERRORS) or cls in ("Failure", "DagsterAssetCheckFailedError"):
            text = first.split(": ", 1)[1] if first.startswith("dagster.") else first
            if "blocking asset check failed" in text:
                text = "blocking check " + " ".join(text.split(":\n", 1)[-1].split()) + " failed (see above)"
            said = " ".join(text.split())
            repeated = said in self.summary.failed_steps.values()
            self.summary.failed_steps[step] = said
            if repeated:  # the same refusal in every step (a reversed range, a missing manifest)
                return None
            return f"{_now()} {step} FAILED: {text}"
        # an error nobody expected: say it once, with where it happened
        cause = error.cause or error
        self.summary.failed_steps[step] = f"{cause.cls_name}: {(cause.message or '').strip().splitlines()[0]}"
        return f"{_now()} {step} FAILED: {error.to_string().strip()}"

    def _note_partitions(self, tags) -> None:
        if self.summary.partitions:
            return
        start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
        if start and end:
            self.summary.partitions = start if start == end else f"{start}..{end}"
        elif tags.get("dagster/partition"):
            self.summary.partitions = tags["dagster/partition"]


def _days(text: str) -> list[str]:
    """The days of '2025-01-01..2025-01-03, 2025-01-05' (as written by day_ranges)."""
    days = []
    for part in text.split(", "):
        first, _, last = part.partition("..")
        a, b = date.fromisoformat(first), date.fromisoformat(last or first)
        days += [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]
    return days


def _now() -> str:
    return datetime.now().strftime("%H:%M:%S")


def _format(record: logging.LogRecord, step: str, message: str) -> str:
    where = f"{step} - " if step else ""
    level = "" if record.levelno == logging.INFO else f"{record.levelname} "
    return f"{_now()} {level}{where}{message}"


@dg.logger(
    config_schema={"log_level": dg.Field(str, is_required=False, default_value="")},
    description="The warehouse's console: each failure once and a one-line gate summary at the "
    "end of a run (DQ_LOG_LEVEL=DEBUG for every event).",
)
def gate_console(init_context) -> logging.Logger:
    level_name = (init_context.logger_config.get("log_level") or os.environ.get(LOG_LEVEL_ENV) or "INFO").upper()
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):
        raise ValueError(f"{LOG_LEVEL_ENV}={level_name!r} is not a log level (DEBUG, INFO, WARNING, ERROR)")
    log = logging.Logger(NAME, level=logging.DEBUG)
    log.addHandler(GateConsoleHandler(level))
    return log
