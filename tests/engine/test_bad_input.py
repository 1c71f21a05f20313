"""Bad and unusual input tables through ``enrich()`` against the emulator.

Every table either becomes a results table with exactly one result row per input row (in
input order, the input columns kept as they were) or fails with a :class:`ConfigError`
naming the column, index or setting at fault, before any request. A cell that cannot be
sent fails only its row, without a request, with an error naming the row and the input.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dagster_runwf import (
    AITutorWorkflow,
    ConfigError,
    Enrichment,
    RunchatWorkflow,
    enrich,
)
from dagster_runwf.emulator import Emulator, EmulatorConfig
from dagster_runwf.emulator.render import body_digest
from dagster_runwf.errors import RowInputError
from dagster_runwf.services.base import ON_MISSING, OnMissing, Workflow
from dagster_runwf.services.values import is_missing

from ..conftest import ECHO, split_options

TYPED = {
    "id": "wf_typed",
    "service": "aitutor",
    "template": "{{i}} {{f}} {{ts}} {{dec}} {{b}} {{d}} {{s}}",
}
"""An AI Tutor workflow with one variable per kind of column."""


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """One emulator for the module; tests look at what changed while they ran."""
    config = {"include_builtins": True, "workflows": [ECHO, TYPED], "rate_limit_enabled": False}
    with Emulator(EmulatorConfig.from_dict(config)) as emulator:
        yield emulator


class Sent:
    """The run requests the emulator received while the block ran (``with Sent(emu) as s``)."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.bodies: list[Any] = []

    def __enter__(self) -> Sent:
        self._start = len(self.emu.requests())
        self._undefined = self.emu.stats()["undefined_substitutions"]
        return self

    def __exit__(self, *exc: object) -> None:
        entries = self.emu.requests()[self._start :]
        self.bodies = [e["body"] for e in entries if e["endpoint"].endswith(".run")]
        self.requests = len(entries)
        # Whatever the input, no row is ever sent with a variable left out.
        assert self.emu.stats()["undefined_substitutions"] == self._undefined


def run(emu: Emulator, frame: pd.DataFrame, workflow: Workflow | None = None, **kw: Any) -> Any:
    workflow = workflow or AITutorWorkflow("wf_echo", ["text"])
    url = emu.aitutor_url if workflow.service == "aitutor" else emu.runchat_url
    options, rest = split_options(url, kw)
    return enrich(frame, workflow, options, **rest)


def refused(emu: Emulator, frame: pd.DataFrame, *names: str, **kw: Any) -> str:
    """The ConfigError of ``frame``, raised before any request; it names each of ``names``."""
    with Sent(emu) as sent, pytest.raises(ConfigError) as info:
        run(emu, frame, **kw)
    assert sent.requests == 0
    message = str(info.value)
    for name in names:
        assert name in message
    return message


def echo(emu: Emulator, values: Sequence[Any], **kw: Any) -> tuple[pd.DataFrame, Sent]:
    """``values`` as the ``text`` column through the echo workflow, one at a time (so the
    request log is in row order); the results table and what was sent."""
    frame = pd.DataFrame({"text": pd.Series(list(values), dtype=object)})
    kw.setdefault("concurrency", 1)
    with Sent(emu) as sent:
        done = run(emu, frame, **kw)
    table = done.to_pandas()
    assert len(table) == len(values)
    return table, sent


# -- the table as a whole --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [object, "float64", "string"])
def test_an_empty_table_gives_an_empty_results_table(
    emu: Emulator, dtype: Any, tmp_path: Any
) -> None:
    frame = pd.DataFrame({"text": pd.Series([], dtype=dtype), "n": pd.Series([], dtype=int)})
    with Sent(emu) as sent:
        in_memory = run(emu, frame)
        on_disk = run(emu, frame, destination=str(tmp_path / "out.parquet"))
    assert sent.requests == 0
    for done in (in_memory, on_disk):
        table = done.to_arrow()
        assert table.num_rows == 0 and table.schema.names[:3] == ["text", "n", "wf_status"]
        assert done.stats.rows == 0


@pytest.mark.parametrize(
    ("frame", "columns", "names"),
    [
        (pd.DataFrame({"story": ["a"]}), None, ("'text' -> column 'text'", "['story']")),
        (pd.DataFrame({"story": ["a"]}), {"text": "tale"}, ("column 'tale'", "['story']")),
        (pd.DataFrame({"text": ["a"]}), {"txt": "text"}, ("['txt']", "variables")),
        (pd.DataFrame(), None, ("column 'text'", "its columns are []")),
    ],
    ids=["no-such-column", "mapped-to-a-missing-column", "unknown-variable", "no-columns"],
)
def test_a_mapping_that_does_not_fit_is_a_config_error(
    emu: Emulator, frame: pd.DataFrame, columns: dict[str, str] | None, names: tuple[str, ...]
) -> None:
    refused(emu, frame, *names, columns=columns)


def test_duplicate_column_names_are_a_config_error_even_when_not_mapped(emu: Emulator) -> None:
    frame = pd.DataFrame([["a", 1, 2]], columns=["text", "n", "n"])
    refused(emu, frame, "duplicate column names ['n']")
    refused(emu, pd.DataFrame({0: ["a"], "text": ["b"]}), "column names must be strings", "[0]")


@pytest.mark.parametrize(
    "index",
    [
        pd.Index([5, 5, 1, 1]),
        pd.Index(["b", "a", "b", "a"], name="key"),
        pd.MultiIndex.from_tuples([(1, "x"), (1, "x"), (0, "y"), (0, "y")], names=["k", "v"]),
        pd.date_range("2024-01-01", periods=4, freq="D"),
    ],
    ids=["non-unique", "strings", "multi", "dates"],
)
def test_any_index_keeps_one_result_per_row_in_input_order(emu: Emulator, index: Any) -> None:
    frame = pd.DataFrame({"text": ["a", "b", None, "bad"]}, index=index)
    table = run(emu, frame).to_pandas()
    assert table.index.equals(frame.index)
    assert table["text"].fillna("-").tolist() == ["a", "b", "-", "bad"]
    assert table["wf_status"].tolist() == ["succeeded", "succeeded", "failed", "failed"]
    # Row errors name the row by its position: labels need not be unique.
    assert table["wf_error"].iloc[2].startswith("row 2: input 'text' is missing")
    assert table["wf_error_type"].tolist()[2:] == ["RowInputError", "RunFailedError"]


@pytest.mark.parametrize(
    ("index", "names"),
    [
        (pd.Index([3, 4], name="wf_status"), ("index ['wf_status']", "rename the index")),
        (
            pd.MultiIndex.from_tuples([(1, 2), (1, 3)], names=["k", "k"]),
            ("index cannot be stored", "distinct names"),
        ),
    ],
    ids=["named-like-a-result-column", "repeated-level-names"],
)
def test_an_index_parquet_cannot_hold_is_a_config_error(
    emu: Emulator, index: Any, names: tuple[str, ...]
) -> None:
    refused(emu, pd.DataFrame({"text": ["a", "b"]}, index=index), *names)


@pytest.mark.parametrize(
    ("column", "names"),
    [
        (pd.Series(["a", 1], dtype=object), ("holds values of type int, str",)),
        (pd.Series([1 + 2j, 3j]), ("ArrowNotImplementedError",)),
        (pd.Series([2**70, 1], dtype=object), ("OverflowError",)),
        (pd.Series(["ok", "\ud800"], dtype=object), ("surrogates not allowed",)),
        (
            pd.Series([np.datetime64("2024-01-01"), np.datetime64("NaT")], dtype=object),
            ("datetime64",),
        ),
        (pd.Series([{1: "a"}], dtype=object), ("dict key",)),
    ],
    ids=[
        "mixed-scalars",
        "complex",
        "huge-int",
        "lone-surrogate",
        "mixed-datetime-units",
        "int-keys",
    ],
)
def test_a_column_parquet_cannot_hold_is_a_config_error_naming_it(
    emu: Emulator, column: pd.Series, names: tuple[str, ...]
) -> None:
    frame = pd.DataFrame({"text": ["x"] * len(column), "odd": column})
    message = refused(emu, frame, "input column 'odd'", "keep_columns", *names)
    assert "Traceback" not in message
    # Leaving the column out of the results is enough.
    assert run(emu, frame, keep_columns=["text"]).stats.succeeded == len(column)


def test_a_column_named_like_a_stored_index_is_refused_before_any_request(emu: Emulator) -> None:
    # pyarrow names a stored index "__index_level_0__": the table could not be written after
    # the runs were paid, so it is refused first.
    frame = pd.DataFrame({"__index_level_0__": ["x"], "text": ["a"]}, index=[7])
    refused(emu, frame, "['__index_level_0__']", "reset the index")


# -- missing cells ---------------------------------------------------------------------------

MISSING_COLUMNS = {
    "float-nan": pd.Series([1.5, np.nan]),
    "object-none": pd.Series(["a", None], dtype=object),
    "object-nan": pd.Series(["a", np.nan], dtype=object),
    "string-na": pd.Series(["a", None], dtype="string"),
    "Int64-na": pd.Series([1, None], dtype="Int64"),
    "datetime-nat": pd.Series([pd.Timestamp("2024-01-31"), pd.NaT]),
    "object-pd-na": pd.Series(["a", pd.NA], dtype=object),
    "category-nan": pd.Series(["a", None], dtype="category"),
}


@pytest.mark.parametrize("on_missing", ON_MISSING)
@pytest.mark.parametrize("kind", list(MISSING_COLUMNS))
def test_a_missing_cell_follows_the_on_missing_policy(
    emu: Emulator, kind: str, on_missing: OnMissing
) -> None:
    frame = pd.DataFrame({"text": MISSING_COLUMNS[kind]})
    workflow = AITutorWorkflow("wf_echo", ["text"], on_missing=on_missing)
    with Sent(emu) as sent:
        table = run(emu, frame, workflow, concurrency=1).to_pandas()
    assert len(table) == 2 and table["wf_status"].iloc[0] == "succeeded"
    missing = table.iloc[1]
    if on_missing == "null":
        assert missing["wf_status"] == "succeeded"
        assert sent.bodies[-1] == {"text": None}
        assert missing["wf_result"].startswith("echo:null")
        return
    assert len(sent.bodies) == 1, "the row with the missing cell is never sent"
    expected_type = "RowSkippedError" if on_missing == "skip" else "RowInputError"
    assert missing["wf_status"] == "failed" and missing["wf_error_type"] == expected_type
    assert missing["wf_attempts"] == 0 and pd.isna(missing["wf_input_hash"])
    if on_missing == "fail":
        assert missing["wf_error"].startswith("row 1: input 'text' is missing")
        assert "on_missing='null'" in missing["wf_error"]
    else:
        assert missing["wf_error"] == "row 1: skipped (on_missing='skip'): input 'text' is missing"


def test_an_unknown_on_missing_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="on_missing must be one of 'fail', 'null', 'skip'"):
        AITutorWorkflow("wf_echo", ["text"], on_missing="drop")  # type: ignore[arg-type]


# -- cells of every kind ---------------------------------------------------------------------

SCALARS: list[tuple[str, Any, Any]] = [
    ("np.int64", np.int64(3), 3),
    ("np.float32", np.float32(1.5), 1.5),
    ("np.bool_", np.bool_(False), False),
    ("bool", True, True),
    ("Decimal", decimal.Decimal("1.25"), 1.25),
    ("date", dt.date(2024, 1, 2), "2024-01-02"),
    ("datetime", dt.datetime(2024, 1, 31, 12, 0), "2024-01-31T12:00:00"),
    ("pd.Timestamp", pd.Timestamp("2024-01-31 12:00", tz="UTC"), "2024-01-31T12:00:00+00:00"),
    ("np.datetime64", np.datetime64("2024-02-01T08:30"), "2024-02-01T08:30:00"),
    ("pd.Timedelta", pd.Timedelta(90, "s"), 90.0),
    ("np.array", np.array([1, 2]), [1, 2]),
    ("tuple", ("a", 1), ["a", 1]),
    ("emoji", "é🎉👩‍👩‍👧", "é🎉👩‍👩‍👧"),
]


def test_numpy_pandas_and_decimal_scalars_are_sent_by_the_documented_rules(
    emu: Emulator,
) -> None:
    values = [value for _, value, _ in SCALARS]
    # Mixed scalars cannot share a Parquet column: the column is sent, not kept.
    table, sent = echo(emu, values, keep_columns=[])
    assert table["wf_status"].tolist() == ["succeeded"] * len(values)
    assert [b["text"] for b in sent.bodies] == [expected for _, _, expected in SCALARS]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"raw", "bytes cannot be sent as JSON; decode them to text"),
        (bytearray(b"raw"), "bytes cannot be sent as JSON"),
        (float("inf"), "inf is not a finite number"),
        (decimal.Decimal("NaN"), "Decimal NaN is not a finite number"),
        ({1, 2}, "builtins.set cannot be sent as JSON"),
        (pd.Period("2024-01", freq="M"), "pandas.Period cannot be sent as JSON"),
        ("\ud800", "input 'text' cannot be sent as JSON: text that is not valid Unicode"),
        ({"a": [1, float("-inf")]}, "input text.a[1]: -inf is not a finite number"),
        ({1: "a"}, "object key 1 is not a string"),
    ],
    ids=[
        "bytes",
        "bytearray",
        "inf",
        "decimal-nan",
        "set",
        "period",
        "surrogate",
        "deep-inf",
        "int-key",
    ],
)
def test_a_cell_with_no_json_form_fails_its_row_unsent(emu: Emulator, value: Any, why: str) -> None:
    table, sent = echo(emu, ["before", value, "after"], keep_columns=[])
    assert table["wf_status"].tolist() == ["succeeded", "failed", "succeeded"]
    error = table["wf_error"].iloc[1]
    assert error.startswith("row 1: ") and why in error
    assert table["wf_error_type"].iloc[1] == "RowInputError"
    assert [b["text"] for b in sent.bodies] == ["before", "after"]


def test_bytes_in_a_kept_column_fail_their_rows_with_advice(emu: Emulator) -> None:
    frame = pd.DataFrame({"text": [b"abc", b"\x00\xff"]})
    table = run(emu, frame).to_pandas()
    assert table["text"].tolist() == [b"abc", b"\x00\xff"], "kept as they were"
    assert table["wf_error"].tolist() == [
        f"row {i}: input text: bytes cannot be sent as JSON; decode them to text, or for an "
        "image send a 'data:image/...;base64,...' URL"
        for i in range(2)
    ]


def test_typed_columns_are_sent_by_the_rules_and_kept_as_they_were(emu: Emulator) -> None:
    frame = pd.DataFrame(
        {
            "i": np.array([1, -(2**62)], dtype=np.int64),
            "f": np.array([0.5, -1.25], dtype=np.float32),
            "ts": [
                pd.Timestamp("2024-01-31 12:00", tz="UTC"),
                pd.Timestamp("1999-12-31 23:59:59.5", tz="UTC"),
            ],
            "dec": [decimal.Decimal("1.10"), decimal.Decimal("-3")],
            "b": [True, False],
            "d": [dt.date(2024, 2, 29), dt.date(1970, 1, 1)],
            "s": ["日本語", "a\x00b"],
        }
    )
    workflow = AITutorWorkflow("wf_typed", list(frame.columns))
    with Sent(emu) as sent:
        table = run(emu, frame, workflow, concurrency=1).to_pandas()
    assert table["wf_status"].tolist() == ["succeeded", "succeeded"]
    assert sent.bodies == [
        {
            "i": 1,
            "f": 0.5,
            "ts": "2024-01-31T12:00:00+00:00",
            "dec": 1.1,
            "b": True,
            "d": "2024-02-29",
            "s": "日本語",
        },
        {
            "i": -(2**62),
            "f": -1.25,
            "ts": "1999-12-31T23:59:59.500000+00:00",
            "dec": -3.0,
            "b": False,
            "d": "1970-01-01",
            "s": "a\x00b",
        },
    ]
    for column in frame.columns:
        assert table[column].tolist() == frame[column].tolist(), column


def test_runchat_tree_inputs_are_sent_as_nested_json(emu: Emulator) -> None:
    trees = [
        {"0": ["a", "b"], "0:1": [1, 2.5, None]},
        [1, [2, [3, "é"]]],
        {"0": np.array([1.5, np.nan]), "1": (True, None), "2": [float("nan")]},
        {"when": pd.Timestamp("2024-01-31"), "amount": decimal.Decimal("2.5")},
    ]
    frame = pd.DataFrame({"id": range(4), "tree": pd.Series(trees, dtype=object)})
    workflow = RunchatWorkflow("demo", ["query_nodeA"], result_output="Answer")
    with Sent(emu) as sent:
        done = run(
            emu,
            frame,
            workflow,
            columns={"query_nodeA": "tree"},
            keep_columns=["id"],
            concurrency=1,
        )
    table = done.to_pandas()
    assert table["wf_status"].tolist() == ["succeeded"] * 4
    assert [b["inputs"]["query_nodeA"] for b in sent.bodies] == [
        {"0": ["a", "b"], "0:1": [1, 2.5, None]},
        [1, [2, [3, "é"]]],
        {"0": [1.5, None], "1": [True, None], "2": [None]},  # NaN inside a tree is null
        {"when": "2024-01-31T00:00:00", "amount": 2.5},
    ]


def test_a_very_long_string_is_sent_and_kept_whole(emu: Emulator) -> None:
    long = "ü" * 500_000 + "🎉" * 125_000  # 1.5 MB of UTF-8
    table, sent = echo(emu, [long, "short"])
    assert table["wf_status"].tolist() == ["succeeded", "succeeded"]
    assert sent.bodies[0] == {"text": long}
    assert table["text"].iloc[0] == long


def test_unicode_and_emoji_are_sent_and_kept_exactly(emu: Emulator) -> None:
    values = ["é", "日本語", "👩‍👩‍👧 family", "שלום", "a\x00b", "$& $$ `", "\u200b", "e\u0301"]
    frame = pd.DataFrame({"🎉 column": values})
    with Sent(emu) as sent:
        table = run(emu, frame, columns={"text": "🎉 column"}, concurrency=1).to_pandas()
    assert table["🎉 column"].tolist() == values
    assert table["wf_status"].tolist() == ["succeeded"] * len(values)
    assert [b["text"] for b in sent.bodies] == values


# -- any table (property-based) --------------------------------------------------------------

SURROGATE = "\ud800"

scalars = st.one_of(
    st.none(),
    st.just(np.nan),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.just(SURROGATE),
)


@st.composite
def columns(draw: st.DrawFn, rows: int) -> pd.Series:
    """One column of a kind a real table has, with missing values where the kind allows."""
    kind = draw(
        st.sampled_from(["int", "float", "bool", "str", "object", "datetime", "Int64", "category"])
    )

    def values(elements: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(elements, min_size=rows, max_size=rows))

    column: pd.Series
    if kind == "int":
        column = pd.Series(values(st.integers(-(2**63), 2**63 - 1)), dtype="int64")
    elif kind == "float":
        column = pd.Series(values(st.floats(allow_nan=True, allow_infinity=True)), dtype="float64")
    elif kind == "bool":
        column = pd.Series(values(st.booleans()), dtype=bool)
    elif kind == "str":
        column = pd.Series(values(st.none() | st.text(max_size=12)), dtype="string")
    elif kind == "datetime":
        moments = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1))
        column = pd.Series(pd.to_datetime(values(st.none() | moments)))
    elif kind == "Int64":
        column = pd.Series(values(st.none() | st.integers(-(2**40), 2**40)), dtype="Int64")
    elif kind == "category":
        column = pd.Series(values(st.none() | st.sampled_from(["x", "y", "é"])), dtype="category")
    else:
        column = pd.Series(values(scalars), dtype=object)
    return column


@st.composite
def tables(draw: st.DrawFn) -> tuple[pd.DataFrame, str, OnMissing, list[str] | None]:
    """A table, the column mapped to ``text``, the missing-cell policy and the kept columns."""
    rows = draw(st.integers(0, 6))
    names = draw(
        st.lists(
            st.sampled_from(["text", "n", "é🎉", "wf_status", "a b"])
            | st.text(min_size=1, max_size=4),
            min_size=1,
            max_size=4,
            unique=draw(st.sampled_from(range(4))) != 2,  # repeated names a quarter of the time
        )
    )
    index = draw(
        st.sampled_from(["range", "repeated", "strings"]).map(
            lambda kind: (
                pd.RangeIndex(rows)
                if kind == "range"
                else pd.Index([i // 2 for i in range(rows)])
                if kind == "repeated"
                else pd.Index([f"r{rows - i}" for i in range(rows)])
            )
        )
    )
    frame = pd.DataFrame({i: draw(columns(rows)) for i in range(len(names))})
    frame.columns = pd.Index(names, dtype=object)  # repeated names on purpose, sometimes
    frame.index = index
    # Now and then a mapping to a column the table does not have.
    mapped = (
        "no such column" if draw(st.sampled_from(range(10))) == 7 else draw(st.sampled_from(names))
    )
    keep = draw(st.none() | st.just([]) | st.just([mapped]))
    return frame, mapped, draw(st.sampled_from(ON_MISSING)), keep


def expected_row(workflow: AITutorWorkflow, value: Any) -> tuple[str, str | None]:
    """("succeeded", digest of the body sent) or ("failed", the start of the row error)."""
    try:
        prepared = workflow.prepare({"text": value})
    except RowInputError as exc:
        return "failed", str(exc)
    return "succeeded", body_digest(json.loads(prepared.request.content or b"null"))[:12]


def plain(value: Any) -> Any:
    """A cell as Parquet gives it back: missing as None, numpy scalars as Python ones."""
    if is_missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    return bool(left == right)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=tables())
def test_any_table_round_trips_or_is_refused_before_any_request(
    emu: Emulator, case: tuple[pd.DataFrame, str, OnMissing, list[str] | None]
) -> None:
    frame, mapped, on_missing, keep = case
    workflow = AITutorWorkflow("wf_echo", ["text"], on_missing=on_missing)
    with Sent(emu) as sent:
        try:
            done: Enrichment = run(
                emu, frame, workflow, columns={"text": mapped}, keep_columns=keep, concurrency=4
            )
        except ConfigError as exc:
            done = None  # type: ignore[assignment]
            message = str(exc)
    if done is None:
        event("refused: " + message.split("'")[0].split("[")[0])
        assert sent.requests == 0
        # It names what is wrong: a column, the index, or the mapping.
        assert any(repr(str(c)) in message for c in frame.columns) or "index" in message
        return

    event("round trip" if len(frame) else "round trip (no rows)")
    table = done.to_pandas()
    kept = list(frame.columns) if keep is None else keep
    assert len(table) == len(frame)
    assert table.index.tolist() == frame.index.tolist()
    assert list(table.columns[: len(kept)]) == kept
    for column in kept:
        got = table[column].tolist()
        assert all(
            same(plain(a), plain(b)) for a, b in zip(got, frame[column].tolist(), strict=True)
        ), column
    for position, value in enumerate(frame[mapped].tolist()):
        status, detail = expected_row(workflow, value)
        row = table.iloc[position]
        assert row["wf_status"] == status
        if status == "succeeded":
            assert row["wf_result"].endswith(f"[{detail}]"), "its own answer"
        else:
            assert row["wf_error"] == f"row {position}: {detail}"
            assert detail is not None
            skipped = detail.startswith("skipped")
            kind = "RowSkippedError" if skipped else "RowInputError"
            assert row["wf_error_type"] == kind and row["wf_attempts"] == 0
    # Only rows that could be sent were, each distinct body once.
    assert len(sent.bodies) == len({json.dumps(b, sort_keys=True) for b in sent.bodies})
    unsent = table["wf_error_type"].isin(["RowInputError", "RowSkippedError"])
    assert done.stats.invalid == int(unsent.sum())
