"""A Runchat flow's schema fingerprint and per-row instances: what a row's input hash covers
(pure: no I/O)."""

from __future__ import annotations

import json

import pytest

from dagster_runwf import RunchatWorkflow
from dagster_runwf.errors import ConfigError, RowInputError
from dagster_runwf.services.runchat import ENTITY_FIELD, INSTANCE_FIELD
from dagster_runwf.services.runchat_schema import (
    Parameter,
    RunchatSchema,
    describe_change,
    schema_fingerprint,
    schema_parts,
)

TEXT = Parameter("text_n1", "Text", "string", "What to write about.")
OUT = Parameter("out_n2", "Out", "string")
SCHEMA = RunchatSchema("Flow", (TEXT,), (OUT,))


def test_the_fingerprint_covers_ids_labels_and_types_only() -> None:
    renamed = RunchatSchema(
        "Another name", (Parameter("text_n1", "Text", "string", "new"),), (OUT,)
    )
    assert schema_fingerprint(renamed) == schema_fingerprint(SCHEMA)
    two = RunchatSchema("Flow", (TEXT, Parameter("tone_n1", "Tone", "string")), (OUT,))
    reordered = RunchatSchema("Flow", tuple(reversed(two.inputs)), (OUT,))
    assert schema_fingerprint(two) == schema_fingerprint(reordered) != schema_fingerprint(SCHEMA)
    retyped = RunchatSchema("Flow", (TEXT,), (Parameter("out_n2", "Out", "number"),))
    assert schema_fingerprint(retyped) != schema_fingerprint(SCHEMA)
    assert describe_change(schema_parts(SCHEMA), schema_parts(two)) == "inputs added: tone_n1"
    assert describe_change(schema_parts(two), schema_parts(retyped)) == (
        "inputs removed: tone_n1; outputs changed: out_n2 (type 'string' -> 'number')"
    )
    assert describe_change(None, schema_parts(SCHEMA)) == ""


def test_a_rows_hash_covers_the_flows_schema() -> None:
    flow = RunchatWorkflow("flow", ["text_n1"])
    row = {"text_n1": "hello"}
    unpinned = flow.prepare(row)
    pinned = flow.with_schema(SCHEMA).prepare(row)
    edited = flow.with_schema(RunchatSchema("Flow", (TEXT,), ())).prepare(row)
    assert pinned.request == unpinned.request, "the schema changes no request"
    assert len({unpinned.input_hash, pinned.input_hash, edited.input_hash}) == 3
    assert flow.with_schema(SCHEMA).prepare(row).input_hash == pinned.input_hash
    assert flow.answer_version == "", "an unpinned flow hashes as before"


def sent(prepared: object) -> dict[str, object]:
    content = prepared.request.content  # type: ignore[attr-defined]
    body: dict[str, object] = json.loads(content)
    return body


def test_an_instance_column_puts_each_rows_instance_in_its_request() -> None:
    flow = RunchatWorkflow("flow", ["text_n1"], instance_id_column="conversation")
    assert flow.row_columns() == {INSTANCE_FIELD: ("instance_id_column", "conversation")}
    one = flow.prepare({"text_n1": "hi", INSTANCE_FIELD: "i-1"})
    two = flow.prepare({"text_n1": "hi", INSTANCE_FIELD: "i-2"})
    new = flow.prepare({"text_n1": "hi", INSTANCE_FIELD: float("nan")})
    assert sent(one)["runchat_instance_id"] == "i-1"
    assert "runchat_instance_id" not in sent(new)
    assert len({one.input_hash, two.input_hash, new.input_hash}) == 3
    with pytest.raises(RowInputError, match=r"instance_id_column='conversation': .* number"):
        flow.prepare({"text_n1": "hi", INSTANCE_FIELD: 3})


def test_continue_by_hashes_the_key_not_the_instance_it_continues() -> None:
    flow = RunchatWorkflow("flow", ["text_n1"], continue_by="customer")
    first = flow.prepare({"text_n1": "hi", ENTITY_FIELD: "A"})
    assert "runchat_instance_id" not in sent(first)
    later = flow.continuing({'"A"': "inst-a"})
    continued = later.prepare({"text_n1": "hi", ENTITY_FIELD: "A"})
    assert sent(continued)["runchat_instance_id"] == "inst-a"
    assert continued.input_hash == first.input_hash, "the key's conversation, either way"
    other = later.prepare({"text_n1": "hi", ENTITY_FIELD: "B"})
    assert other.input_hash != first.input_hash and "runchat_instance_id" not in sent(other)
    number = later.prepare({"text_n1": "hi", ENTITY_FIELD: 7})
    text = later.prepare({"text_n1": "hi", ENTITY_FIELD: "7"})
    assert number.input_hash != text.input_hash
    with pytest.raises(RowInputError, match=r"continue_by='customer': the row has no key"):
        flow.prepare({"text_n1": "hi", ENTITY_FIELD: None})


def test_one_way_to_pick_the_instance() -> None:
    with pytest.raises(ConfigError, match="instance_id_column and continue_by: choose one"):
        RunchatWorkflow("flow", ["text_n1"], instance_id_column="c", continue_by="k")
