"""Typed outputs, the pure part: the JSON object found in an answer (plain, fenced, or with
text around it) and each field checked and converted to its Arrow type, or a parse error
naming the field and what was wrong."""

from __future__ import annotations

from typing import Optional

import pyarrow as pa
import pydantic
import pytest

from dagster_runwf import AITutorWorkflow, ConfigError, OutputSchema, RunchatWorkflow
from dagster_runwf.services.typed_answer import arrow_type, type_name

LEAD = OutputSchema.of({"score": pa.float64(), "label": pa.string(), "tags": pa.list_(pa.string())})
EXPECTED = {"score": 0.8, "label": "Acme", "tags": ["fintech", "b2b"]}
BODY = '{"score": 0.8, "label": "Acme", "tags": ["fintech", "b2b"]}'


@pytest.mark.parametrize(
    "answer",
    [
        BODY,
        f"  {BODY}\n",
        f"```json\n{BODY}\n```",
        f"Here is the result:\n```json\n{BODY}\n```\nAnything else?",
        f"```\n{BODY}\n```",
        f"Sure! {BODY} Hope this helps. [abc123]",
        # A broken object first: the object nested in it is not taken for the answer.
        'Draft: {"score": oops, "inner": {"x": 1}} final: ' + BODY,
    ],
    ids=["plain", "spaces", "fenced", "fenced-with-text", "bare-fence", "surrounded", "broken"],
)
def test_the_object_is_found_wherever_the_model_put_it(answer: str) -> None:
    typed = LEAD.parse(answer)
    assert typed.error is None
    assert dict(typed.values) == EXPECTED


def test_a_wrong_type_names_the_field_and_what_came() -> None:
    typed = LEAD.parse('{"score": "high", "label": "Acme", "tags": []}')
    assert typed.error == "field 'score': expected a number, got 'high'"
    assert set(typed.values.values()) == {None}  # nothing half-typed


def test_a_missing_and_a_null_field_are_named_each() -> None:
    typed = LEAD.parse('{"label": null, "tags": ["a"]}')
    assert typed.error == "field 'score' is missing; field 'label' is null"
    assert set(typed.values.values()) == {None}


def test_a_nested_list_item_is_named_by_its_position() -> None:
    nested = OutputSchema.of({"matrix": "list<list<int64>>"})
    assert nested.parse('{"matrix": [[1, 2], [3.0]]}').values == {"matrix": [[1, 2], [3]]}
    typed = nested.parse('{"matrix": [[1], [2, "x"]]}')
    assert typed.error == "field 'matrix': item 1: item 1: expected an integer, got 'x'"
    assert LEAD.parse('{"score": 1, "label": "a", "tags": "b2b"}').error == (
        "field 'tags': expected a list, got 'b2b'"
    )


def test_no_object_and_a_json_that_is_no_object() -> None:
    assert LEAD.parse("I could not decide.").error == "no JSON object in the answer"
    assert LEAD.parse("[1, 2]").error == "the answer's JSON is a list, not an object"
    assert LEAD.parse(None).error is None  # a failed row: its own error says why


def test_quoted_numbers_and_booleans_are_read_nothing_else_coerced() -> None:
    schema = OutputSchema.of({"n": "int64", "x": "float64", "ok": "bool", "name": "string"})
    typed = schema.parse('{"n": "7", "x": "0.5", "ok": "True", "name": "a"}')
    assert typed.values == {"n": 7, "x": 0.5, "ok": True, "name": "a"}
    assert schema.parse('{"n": 7.5, "x": 1, "ok": true, "name": "a"}').error == (
        "field 'n': expected an integer, got 7.5"
    )
    assert schema.parse('{"n": 1, "x": 1, "ok": 1, "name": 2}').error == (
        "field 'ok': expected true or false, got 1; field 'name': expected text, got 2"
    )
    small = OutputSchema.of({"n": pa.int8()})
    assert small.parse('{"n": 300}').error == "field 'n': 300 does not fit in int8"


def test_a_pydantic_model_maps_its_annotations() -> None:
    class Lead(pydantic.BaseModel):
        score: float
        label: Optional[str]  # noqa: UP045 (Optional is what users write too)
        rank: int | None = None
        hot: bool
        tags: list[str]

    schema = OutputSchema.of(Lead)
    assert schema.describe() == {
        "score": "float64",
        "label": "string?",
        "rank": "int64?",
        "hot": "bool",
        "tags": "list<string>",
    }
    typed = schema.parse('{"score": 1, "label": null, "hot": false, "tags": []}')
    assert typed.values == {"score": 1.0, "label": None, "rank": None, "hot": False, "tags": []}


def test_a_json_schema_maps_its_properties() -> None:
    schema = OutputSchema.from_json_schema(
        {
            "type": "object",
            "properties": {
                "score": {"type": "number"},
                "rank": {"type": ["integer", "null"]},
                "hot": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "note": {"type": "string"},
            },
            "required": ["score", "rank", "hot", "tags"],
        }
    )
    assert schema.describe() == {
        "score": "float64",
        "rank": "int64?",
        "hot": "bool",
        "tags": "list<string>",
        "note": "string?",  # not required
    }


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "the JSON Schema must be an object"),
        ({"type": "array"}, "the JSON Schema's type must be 'object', not 'array'"),
        ({"type": "object"}, "the JSON Schema has no 'properties'"),
        ({"properties": {"a": {"type": "date"}}}, "property 'a' has type 'date'"),
        ({"properties": {"a": {"type": "array"}}}, "property 'a' is an array without 'items'"),
    ],
)
def test_a_bad_json_schema_says_where(document: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        OutputSchema.from_json_schema(document)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"when": pa.timestamp("us")}, "field 'when': type timestamp"),
        ({"when": "datetime"}, "field 'when': unknown type 'datetime'"),
        ({"when": 3}, "field 'when': expected an Arrow type"),
        ({}, "has no fields"),
        ("score", "must be a mapping of field -> Arrow type"),
    ],
)
def test_unsupported_types_are_refused_when_the_workflow_is_made(
    spec: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        AITutorWorkflow("wf_x", ["text"], output_schema=spec)  # type: ignore[arg-type]


def test_type_names_read_back() -> None:
    for name in ("string", "int64", "float64", "bool", "list<string>", "list<list<float64>>"):
        assert type_name(arrow_type(name)) == name


def test_the_schema_is_not_part_of_the_answers_identity() -> None:
    """Changing output_schema re-reads the journaled answers: the request, its hash and the
    workflow's fingerprint (which names the Dagster asset's journal job) stay the same."""
    row = {"query_nodeA": "Why?"}
    plain, typed = (
        RunchatWorkflow("demo", ["query_nodeA"], output_schema=schema)
        for schema in (None, {"score": "float64"})
    )
    assert typed.prepare(row) == plain.prepare(row)
    assert typed.fingerprint() == plain.fingerprint()


def test_a_described_schema_reads_back_as_itself() -> None:
    """describe() is plain JSON (for code versions and definition metadata) that of() reads
    back, nullable fields (``?``) included."""
    schema = OutputSchema.of({"score": "float64", "rank": "int64?", "tags": "list<string>"})
    assert schema.describe() == {"score": "float64", "rank": "int64?", "tags": "list<string>"}
    assert OutputSchema.of(schema.describe()) == schema
    assert schema.parse('{"score": 1, "tags": []}').values == {
        "score": 1.0,
        "rank": None,
        "tags": [],
    }
