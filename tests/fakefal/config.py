"""Runtime configuration and fault injection plan of the fake fal server."""

from __future__ import annotations

import dataclasses
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# Where faults can be injected.
API_TARGETS = ("submit", "status", "result", "cancel")
HTTP_TARGETS = (*API_TARGETS, "files", "upload")  # upload: fal storage writes
JOB_FAULTS = ("runner_error", "timeout", "never", "content_policy")
WEBHOOK_FAULTS = ("duplicate", "delay", "early", "drop")
# HTTP fault kinds besides a status code ("429", "500", "502", ...):
#   drop  - do the work (e.g. create the job), then close the connection, no response
#   reset - close the connection before doing anything
#   slow  - do the work, then wait ``slow_seconds`` before answering
# Answers fal-client cannot read (the work is done, the 2xx answer is spoiled):
#   unknown_status - a status body with a status value fal-client does not know
#   missing_fields - a status body without ``logs``/``queue_position`` (KeyError)
#   not_json       - a 2xx whose body is an HTML page, not JSON
ANSWER_FAULTS = ("unknown_status", "missing_fields", "not_json")
HTTP_ACTIONS = ("drop", "reset", "slow", *ANSWER_FAULTS)


@dataclass(frozen=True)
class Fault:
    kind: str  # a status code as a string, an HTTP action, a job or webhook fault
    nginx: bool | None = None  # 502-504: nginx ingress page (client retries) by default
    seconds: float | None = None  # slow / webhook delay override

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass
class FakeFalConfig:
    queue_seconds: float = 0.5
    run_seconds: float = 1.0
    max_concurrent: int = 2  # fal's default per-account concurrency
    invalid_run_seconds: float = 0.1  # the runner rejects bad input quickly
    accepted_keys: list[str] | None = None  # None: any non-empty "Key ..." works
    user_id: str = "fakefal-user"
    seed: int = 0
    slow_seconds: float = 5.0
    # target ("submit", "status", "result", "cancel", "files", "upload", "*" = the four API
    # targets) -> kind ("429", "500", "502", "drop", "reset", "slow") -> probability
    faults: dict[str, dict[str, float]] = field(default_factory=dict)
    job_failure_rate: float = 0.0  # runner_disconnected
    job_timeout_rate: float = 0.0  # request_timeout
    content_policy_rate: float = 0.0
    never_finish_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_delay_rate: float = 0.0
    webhook_delay_seconds: float = 2.0  # delayed webhooks wait uniform(0, this) extra
    webhook_early_rate: float = 0.0  # delivered before the submit response is sent
    webhook_drop_rate: float = 0.0  # never delivered (target must fall back to polling)
    webhook_max_attempts: int = 4
    webhook_retry_base: float = 0.25  # backoff: base * 2**(attempt-1)
    webhook_timeout: float = 10.0
    result_ttl_seconds: float | None = None  # results 404 this long after completion
    # fal's account lock: every submit answers 403 "User is locked. Reason: <this>. ..."
    # while set (status, result and cancel still answer, as fal-ai/fal#1147 reports).
    locked_reason: str | None = None
    max_records: int = 100_000  # recorded requests kept (oldest dropped)

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        for name, value in values.items():
            if name == "faults":
                value = _check_rates(value)
            else:
                # Coerce by the default's type: CLI/HTTP callers may send "2" or 2.
                default = getattr(FakeFalConfig, name, None)
                if isinstance(default, bool):
                    value = bool(value)
                elif isinstance(default, (int, float)) and value is not None:
                    value = type(default)(value)
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_rates(faults: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    checked: dict[str, dict[str, float]] = {}
    for target, kinds in faults.items():
        if target not in (*HTTP_TARGETS, "*"):
            raise ValueError(f"unknown fault target {target!r}")
        for kind in kinds:
            _check_http_kind(kind)
        checked[target] = {str(k): float(v) for k, v in kinds.items()}
    return checked


def _check_http_kind(kind: str) -> None:
    if kind not in HTTP_ACTIONS and not (kind.isdigit() and 400 <= int(kind) <= 599):
        raise ValueError(f"unknown HTTP fault {kind!r}: use a 4xx/5xx code or {HTTP_ACTIONS}")


class FaultPlan:
    """Forced faults (consumed first, in order) plus seeded random ones."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._forced: dict[str, deque[Fault]] = {}

    def force(self, target: str, fault: Fault, times: int = 1) -> None:
        if target in (*HTTP_TARGETS, "*"):
            _check_http_kind(fault.kind)
        elif target == "job":
            if fault.kind not in JOB_FAULTS:
                raise ValueError(f"job faults are {JOB_FAULTS}")
        elif target == "webhook":
            if fault.kind not in WEBHOOK_FAULTS:
                raise ValueError(f"webhook faults are {WEBHOOK_FAULTS}")
        else:
            raise ValueError(f"unknown fault target {target!r}")
        self._forced.setdefault(target, deque()).extend([fault] * times)

    def forced(self) -> dict[str, list[dict[str, Any]]]:
        return {t: [f.to_dict() for f in q] for t, q in self._forced.items() if q}

    def pop_forced(self, target: str) -> Fault | None:
        for name in (target, "*") if target in API_TARGETS else (target,):
            queue = self._forced.get(name)
            if queue:
                return queue.popleft()
        return None

    def http_fault(self, target: str, rates: dict[str, dict[str, float]]) -> Fault | None:
        forced = self.pop_forced(target)
        if forced is not None:
            return forced
        merged = dict(rates.get(target, {}))
        if target in API_TARGETS:
            for kind, p in rates.get("*", {}).items():
                merged[kind] = merged.get(kind, 0.0) + p
        kind = self.choose(merged)
        return Fault(kind) if kind else None

    def choose(self, rates: dict[str, float]) -> str | None:
        """One draw against cumulative probabilities (sorted, so seeds are stable)."""
        if not any(p > 0 for p in rates.values()):
            return None
        r, total = self.rng.random(), 0.0
        for kind in sorted(rates):
            total += rates[kind]
            if r < total:
                return kind
        return None

    def chance(self, p: float) -> bool:
        return p > 0 and self.rng.random() < p
