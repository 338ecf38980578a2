"""What the fake "model runners" of the Veo 3.1 family decide about a job.

Each endpoint has its own input schema (`SCHEMAS`, written from fal's model pages, apart
from the project's own catalogue so that the two check each other). Validation mimics
fal's pydantic errors (fal.md §4): the queue accepts anything and the 422 only shows up at
the result. Stricter than fal on purpose: real JSON booleans only, and a field the
endpoint does not take is refused (`extra_forbidden`), so that an argument sent to the
wrong model shows. Magic prompt markers force outcomes deterministically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["ok", "invalid", "content_policy", "runner_error", "timeout", "never"]
OUTCOMES: tuple[str, ...] = ("ok", "invalid", "content_policy", "runner_error", "timeout", "never")

ENUMS: dict[str, tuple[str, ...]] = {
    "duration": ("4s", "6s", "8s"),
    "resolution": ("720p", "1080p", "4k"),
    "aspect_ratio": ("auto", "16:9", "9:16"),
    "safety_tolerance": ("1", "2", "3", "4", "5", "6"),
}
BOOLS = ("generate_audio", "auto_fix")
STRINGS = ("negative_prompt",)
REQUIRED = ("prompt", "image_url")


@dataclass(frozen=True)
class Schema:
    """One endpoint's input: required strings, a required list of strings, its enums,
    booleans, optional strings and whether it takes a seed."""

    required: tuple[str, ...]
    enums: dict[str, tuple[str, ...]]
    lists: tuple[str, ...] = ()
    bools: tuple[str, ...] = BOOLS
    strings: tuple[str, ...] = STRINGS
    seed: bool = True

    @property
    def fields(self) -> set[str]:
        names = {*self.required, *self.enums, *self.lists, *self.bools, *self.strings}
        return names | ({"seed"} if self.seed else set())


_WIDE = ("16:9", "9:16")
_TEXT = Schema(required=("prompt",), enums={**ENUMS, "aspect_ratio": _WIDE})
_IMAGE = Schema(required=REQUIRED, enums=ENUMS)
_FRAMES = Schema(required=("prompt", "first_frame_url", "last_frame_url"), enums=ENUMS)
# fal's reference-to-video: `image_urls`, 16:9/9:16, duration "8s" only, no negative
# prompt and no seed.
_REFERENCES = Schema(
    required=("prompt",),
    lists=("image_urls",),
    enums={**ENUMS, "aspect_ratio": _WIDE, "duration": ("8s",)},
    strings=(),
    seed=False,
)
SCHEMAS: dict[str, Schema] = {
    "fal-ai/veo3.1": _TEXT,
    "fal-ai/veo3.1/fast": _TEXT,
    "fal-ai/veo3.1/image-to-video": _IMAGE,
    "fal-ai/veo3.1/fast/image-to-video": _IMAGE,
    "fal-ai/veo3.1/first-last-frame-to-video": _FRAMES,
    "fal-ai/veo3.1/fast/first-last-frame-to-video": _FRAMES,
    "fal-ai/veo3.1/reference-to-video": _REFERENCES,
}
DEFAULT_ENDPOINT = "fal-ai/veo3.1/image-to-video"

_MARKER = re.compile(r"\[fal:([a-z_]+)(?:=([0-9]*\.?[0-9]+))?\]")


@dataclass
class Markers:
    """Parsed ``[fal:...]`` markers from a prompt."""

    outcome: Outcome | None = None
    run_seconds: float | None = None  # [fal:slow=S]
    webhook: dict[str, float] = field(default_factory=dict)  # fault name -> arg


def parse_markers(prompt: object) -> Markers:
    markers = Markers()
    if not isinstance(prompt, str):
        return markers
    for name, arg in _MARKER.findall(prompt):
        if name in ("content_policy", "runner_error", "timeout", "never"):
            markers.outcome = name  # type: ignore[assignment]
        elif name == "fail":
            markers.outcome = "runner_error"
        elif name == "slow" and arg:
            markers.run_seconds = float(arg)
        elif name.startswith("webhook_"):
            markers.webhook[name.removeprefix("webhook_")] = float(arg) if arg else 0.0
    return markers


def _enum_msg(allowed: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in allowed]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}"


def validate(body: Any, endpoint: str = DEFAULT_ENDPOINT) -> list[dict[str, Any]]:
    """pydantic-v2-style error objects for `endpoint`'s input (`SCHEMAS`); [] when valid."""
    schema = SCHEMAS[endpoint]
    if not isinstance(body, dict):
        return [
            {
                "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "type": "model_attributes_type",
                "input": body,
            }
        ]
    errors: list[dict[str, Any]] = []
    for name in (*schema.required, *schema.lists):
        if name not in body:
            errors.append({"loc": ["body", name], "msg": "Field required", "type": "missing"})
        elif name in schema.lists:
            errors.extend(_list_errors(name, body[name]))
        elif not isinstance(body[name], str):
            errors.append(_type_error(name, body[name], "string_type", "a valid string"))
    for name in schema.strings:
        if name in body and not isinstance(body[name], str):
            errors.append(_type_error(name, body[name], "string_type", "a valid string"))
    for name, allowed in schema.enums.items():
        if name in body and body[name] not in allowed:
            msg = _enum_msg(allowed)
            errors.append(
                {
                    "loc": ["body", name],
                    "msg": f"Input should be {msg}",
                    "type": "enum",
                    "ctx": {"expected": msg},
                    "input": body[name],
                }
            )
    for name in schema.bools:
        # Strict on purpose: the project must send real JSON booleans.
        if name in body and not isinstance(body[name], bool):
            errors.append(_type_error(name, body[name], "bool_type", "a valid boolean"))
    seed = body.get("seed")
    if schema.seed and "seed" in body and (isinstance(seed, bool) or not isinstance(seed, int)):
        errors.append(_type_error("seed", body["seed"], "int_type", "a valid integer"))
    for name in body:
        if name not in schema.fields:
            errors.append(
                {
                    "loc": ["body", name],
                    "msg": "Extra inputs are not permitted",
                    "type": "extra_forbidden",
                    "input": body[name],
                }
            )
    return errors


def _list_errors(name: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return [_type_error(name, value, "list_type", "a valid list")]
    if not value:
        return [
            {
                "loc": ["body", name],
                "msg": "List should have at least 1 item after validation, not 0",
                "type": "too_short",
                "input": value,
            }
        ]
    return [
        {**_type_error(name, item, "string_type", "a valid string"), "loc": ["body", name, i]}
        for i, item in enumerate(value)
        if not isinstance(item, str)
    ]


def _type_error(name: str, value: Any, type_: str, what: str) -> dict[str, Any]:
    return {"loc": ["body", name], "msg": f"Input should be {what}", "type": type_, "input": value}


def content_policy_detail(prompt: object) -> list[dict[str, Any]]:
    return [
        {
            "loc": ["body", "prompt"],
            "msg": "The content was flagged by a content checker.",
            "type": "content_policy_violation",
            "url": "https://docs.fal.ai/errors#content_policy_violation",
            "input": prompt,
        }
    ]


# Infrastructure failures: (HTTP status at result, detail, error_type); fal.md §4.
INFRA_ERRORS: dict[str, tuple[int, str, str]] = {
    "runner_error": (503, "Runner disconnected", "runner_disconnected"),
    "timeout": (504, "Request timed out", "request_timeout"),
    "cancelled": (499, "Request was cancelled by the client", "client_cancelled"),
    # X-Fal-Request-Timeout (start_timeout) passed while queued; result also carries
    # X-Fal-Request-Timeout-Type: user, which tells fal_client not to retry.
    "start_timeout": (504, "Request timed out", "request_timeout"),
}
