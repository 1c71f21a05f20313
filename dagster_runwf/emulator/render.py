"""How an emulated run turns its inputs into a result.

Results are pure functions of the request: the workflow's template rendered with the
inputs, plus a short digest of the canonical JSON of what was sent. That lets a test check
that every row received its own answer (and recompute the expected answer with the same
functions), while the text still looks like something a workflow would return.

AI Tutor templates are rendered the way its server does it, quirks included, because a
client must be tested against those quirks: each variable replaces only its *first*
``{{name}}``; a variable missing from the body becomes the literal text ``undefined``;
non-string values are stringified as JavaScript would (``true``, ``1.5``, JSON for arrays
and objects); and, since the server uses ``String.prototype.replace`` with a string
replacement, ``$&``, ``$$``, ``$``` and ``$'`` in a value are expanded as in JavaScript.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dagster_runwf.emulator.workflow_spec import ParamSpec, WorkflowSpec

DIGEST_CHARS = 12

# Encoders built once: ``json.dumps`` with options builds a new encoder on every call.
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept: the same value always gives the same text."""
    return _canonical(value)


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def body_digest(body: Any) -> str:
    """Full sha256 of the canonical JSON of a request body."""
    return sha256_hex(canonical_json(body))


def js_number(x: float) -> str:
    """``String(x)`` for a JavaScript number."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    text = repr(float(x))
    if "e" not in text:
        return text
    mantissa, exp_text = text.split("e")
    exp = int(exp_text)
    if -7 < exp < 21:
        return format(Decimal(text), "f")
    return f"{mantissa}e{'+' if exp > 0 else '-'}{abs(exp)}"


def js_string(value: Any) -> str:
    """A body value as the AI Tutor server puts it into a template."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return js_number(value)
    return _compact(value)


def _js_replace_first(text: str, pattern: str, replacement: str) -> str:
    """``text.replace(pattern, replacement)`` with JavaScript semantics for a string
    pattern (first occurrence only, ``$`` patterns in the replacement expanded)."""
    at = text.find(pattern)
    if at < 0:
        return text
    if "$" in replacement:
        before, after = text[:at], text[at + len(pattern) :]
        out: list[str] = []
        i = 0
        while i < len(replacement):
            ch = replacement[i]
            nxt = replacement[i + 1] if i + 1 < len(replacement) else ""
            if ch == "$" and nxt in ("$", "&", "`", "'"):
                out.append({"$": "$", "&": pattern, "`": before, "'": after}[nxt])
                i += 2
                continue
            out.append(ch)
            i += 1
        replacement = "".join(out)
    return text[:at] + replacement + text[at + len(pattern) :]


@dataclass(frozen=True)
class AITutorRun:
    """What an AI Tutor run returns, and how many variables were missing."""

    result: str
    citations: list[str]
    undefined: list[str]
    digest: str


def render_aitutor_template(
    template: str, variables: list[str], body: Mapping[str, Any]
) -> tuple[str, list[str]]:
    """Render like the server; returns the text and the variables that were missing."""
    missing: list[str] = []
    content = template
    for name in variables:
        if name in body:
            value = js_string(body[name])
        else:
            value = "undefined"
            missing.append(name)
        content = _js_replace_first(content, "{{" + name + "}}", value)
    return content, missing


def aitutor_run(spec: WorkflowSpec, body: Any, body_sha256: str | None = None) -> AITutorRun:
    """The result of running AI Tutor workflow ``spec`` with request ``body``.

    ``result`` is the rendered template followed by `` [<digest>]``, the first 12 hex
    characters of the sha256 of the canonical JSON of the body (``body_sha256``, when the
    caller already has it).
    """
    values: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    digest = (body_sha256 or body_digest(body))[:DIGEST_CHARS]
    text, missing = render_aitutor_template(spec.template, spec.variables, values)
    citations = [render_aitutor_template(c, spec.variables, values)[0] for c in spec.citations]
    return AITutorRun(f"{text} [{digest}]", citations, missing, digest)


def _render_runchat(template: str, values: Mapping[str, str]) -> str:
    out = template
    for name, value in values.items():
        token = "{{" + name + "}}"
        if token in out:
            out = out.replace(token, value)
    return out


def runchat_outputs(
    spec: WorkflowSpec, inputs: Mapping[str, Any], webhook: Any = None
) -> list[dict[str, Any]]:
    """The ``data`` list of a Runchat run: each output parameter with its data filled.

    ``inputs`` are the run's inputs keyed by parameter id; ``webhook`` the webhook body
    when the flow was triggered that way. Missing inputs render as empty text.
    """
    payload: Any = inputs if webhook is None else webhook
    values: dict[str, str] = {p.id: "" for p in spec.inputs}
    values.update({k: js_string(v) for k, v in inputs.items()})
    values["inputs"] = canonical_json(payload)
    values["webhook"] = "" if webhook is None else canonical_json(webhook)
    values["hash"] = body_digest(payload)[:DIGEST_CHARS]
    return [_output(p, values) for p in spec.outputs]


def _output(param: ParamSpec, values: Mapping[str, str]) -> dict[str, Any]:
    if isinstance(param.template, list):
        data: list[Any] = [_render_runchat(t, values) for t in param.template]
    else:
        data = [_typed_data(_render_runchat(param.template, values), param.type)]
    out = param.schema()
    out["data"] = data
    return out


def _typed_data(text: str, param_type: str) -> Any:
    """A rendered one-item output as Runchat sends a value of its type: a ``number`` as a
    JSON number, a ``boolean`` as ``true``/``false``, an ``object`` as the object the text
    spells; text that is no such value (and every other type) stays text."""
    if param_type == "number":
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() and "." not in text else number
    if param_type == "boolean" and text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    if param_type == "object":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
