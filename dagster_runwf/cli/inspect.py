"""``runwf schema`` and ``runwf balance``: the services' free calls, from the shell.

Both are the calls a user makes before a paid run: what does this Runchat flow take and
give (so ``--map`` and ``--output-column`` can be written), and how many credits does this
AI Tutor key have left. Neither costs a run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from ..engine.service_calls import fetch_balance, fetch_schema
from ..services import aitutor, runchat
from ..services.runchat_schema import Parameter, RunchatSchema
from ._common import ENV_HELP, add_base_url, api_key, base_url, make_parser, run_command

_SCHEMA_EPILOG = f"""The inputs' ids (paramId_nodeId) are what 'runwf enrich --map ID=COLUMN' maps
(a label works too when it is unique); the outputs' labels are what --result-output,
--citations-output and --output-column name.

examples:
  export RUNCHAT_API_KEY=...
  runwf schema --workflow abc123
  runwf schema --workflow abc123 --json | jq '.inputs[].id'

exit status: 0 printed; 1 the service refused (401 bad key, 404 unknown flow) or was
unreachable; 2 a configuration error (no key, bad URL).

{ENV_HELP}
"""

_BALANCE_EPILOG = f"""examples:
  export AITUTOR_API_KEY=sk_...
  runwf balance
  runwf balance --json

exit status: 0 printed; 1 the service refused (401 bad key) or was unreachable;
2 a configuration error (no key, bad URL).

{ENV_HELP}
"""


def schema_main(argv: Sequence[str] | None = None) -> int:
    """``runwf schema --workflow ID``: print a Runchat flow's inputs and outputs."""
    parser = make_parser(
        "runwf schema",
        "Print a Runchat flow's inputs and outputs (ids, labels, types). Free: no run.",
        _SCHEMA_EPILOG,
    )
    parser.add_argument("--workflow", required=True, metavar="ID", help="the Runchat flow id")
    add_base_url(parser, runchat.SERVICE)
    parser.add_argument("--json", action="store_true", help="print the schema as JSON")
    args = parser.parse_args(argv)

    def command() -> int:
        key = api_key(runchat.SERVICE)
        url = base_url(runchat.SERVICE, args.base_url)
        schema = asyncio.run(fetch_schema(args.workflow, key, url))
        if args.json:
            print(json.dumps(schema_as_dict(args.workflow, schema), indent=2))
        else:
            print(format_schema(args.workflow, schema))
        return 0

    return run_command(command)


def balance_main(argv: Sequence[str] | None = None) -> int:
    """``runwf balance``: print an AI Tutor key's remaining credits."""
    parser = make_parser(
        "runwf balance",
        "Print the credits left on the AI Tutor key in $AITUTOR_API_KEY. Free: no run.",
        _BALANCE_EPILOG,
    )
    add_base_url(parser, aitutor.SERVICE)
    parser.add_argument("--json", action="store_true", help='print {"credits": N}')
    args = parser.parse_args(argv)

    def command() -> int:
        key = api_key(aitutor.SERVICE)
        url = base_url(aitutor.SERVICE, args.base_url)
        credits = asyncio.run(fetch_balance(key, url))
        if args.json:
            print(json.dumps({"credits": credits}))
        else:
            print(f"AI Tutor credits: {format_number(credits)}")
        return 0

    return run_command(command)


def schema_as_dict(runchat_id: str, schema: RunchatSchema) -> dict[str, object]:
    """The schema as plain JSON-ready data."""

    def params(items: Sequence[Parameter]) -> list[dict[str, str]]:
        return [
            {"id": p.id, "label": p.label, "type": p.type, "description": p.description}
            for p in items
        ]

    return {
        "id": runchat_id,
        "name": schema.name,
        "inputs": params(schema.inputs),
        "outputs": params(schema.outputs),
    }


def format_schema(runchat_id: str, schema: RunchatSchema) -> str:
    """The schema as an aligned, readable listing."""
    lines = [f"Runchat flow {runchat_id}: {schema.name}"]
    for title, params in (("inputs", schema.inputs), ("outputs", schema.outputs)):
        lines.append("")
        if not params:
            lines.append(f"{title}: none")
            continue
        lines.append(f"{title}:")
        id_width = max(len("id"), *(len(p.id) for p in params))
        label_width = max(len("label"), *(len(p.label) for p in params))
        type_width = max(len("type"), *(len(p.type) for p in params))
        lines.append(
            f"  {'id':<{id_width}}  {'label':<{label_width}}  {'type':<{type_width}}  description"
        )
        for p in params:
            lines.append(
                f"  {p.id:<{id_width}}  {p.label:<{label_width}}  {p.type:<{type_width}}  "
                f"{p.description}".rstrip()
            )
    return "\n".join(lines)


def format_number(value: float) -> str:
    """A count of credits: whole numbers without a decimal point."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
