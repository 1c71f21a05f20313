"""What ``dg scaffold defs dagster_runwf.EnrichedAssetComponent`` writes: a commented
``defs.yaml`` for one service, built from its
:class:`~dagster_runwf.services.service_info.ServiceInfo` (its name, key and base-URL
variables, default rate and concurrency), so every registered service can be scaffolded.
"""

import dagster as dg
from pydantic import BaseModel

from ..services.registry import SERVICE_NAMES, ServiceName, service_info
from ..services.service_info import ServiceInfo


class EnrichedAssetScaffoldParams(BaseModel):
    """Options of ``dg scaffold defs dagster_runwf.EnrichedAssetComponent --json-params``."""

    service: ServiceName = SERVICE_NAMES[0]
    source: str = "my_table"


class EnrichedAssetScaffolder(dg.Scaffolder[EnrichedAssetScaffoldParams]):
    """Writes a commented ``defs.yaml`` for one service, to be filled in."""

    @classmethod
    def get_scaffold_params(cls) -> type[EnrichedAssetScaffoldParams]:
        """``service`` (one of the registered services) and ``source`` (the upstream asset
        key)."""
        return EnrichedAssetScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[EnrichedAssetScaffoldParams]) -> None:
        """Write ``defs.yaml`` (or, with ``--format python``, Dagster's ``component.py``)."""
        if request.scaffold_format == "python":
            from dagster.components.component_scaffolding import scaffold_component

            scaffold_component(request, {})
            return
        params = request.params or EnrichedAssetScaffoldParams()
        text = (
            scaffold_text(service_info(params.service))
            .replace("TYPE_NAME", request.type_name)
            .replace("SOURCE", params.source)
        )
        path = request.target_path / "defs.yaml"
        if request.append and path.exists():
            text = path.read_text(encoding="utf-8").rstrip("\n") + "\n---\n" + text
        path.write_text(text, encoding="utf-8")


_SCAFFOLD_EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "aitutor": [
        ("workflow: wf_abc123", "the workflow's id"),
        ("inputs: [story]", "its template variables ({{story}})"),
        ("columns: {story: text}", "variable -> column, where names differ"),
    ],
    "runchat": [
        ("workflow: my-flow-id", "the flow's id"),
        ("inputs: [query_nodeA]", "input ids (paramId_nodeId)"),
        ("columns: {query_nodeA: question}", "input id -> column"),
    ],
}
"""Each service's example workflow lines for the scaffolded ``defs.yaml``: (line, comment).
A service without an entry gets generic ones."""

_GENERIC_EXAMPLE = [
    ("workflow: my-workflow-id", "the workflow's id"),
    ("inputs: [my_input]", "its inputs"),
    ("columns: {my_input: text}", "input -> column, where names differ"),
]

_OUTPUT_EXAMPLES = [
    ("# result_output: Answer", "output label or id of the text result"),
    ("# output_columns: {answer: Answer}", "new column -> output label or id"),
]


def scaffold_text(info: ServiceInfo) -> str:
    """The commented ``defs.yaml`` ``dg scaffold defs`` writes for one service (with
    ``TYPE_NAME`` and ``SOURCE`` left to fill in)."""
    answer = "wf_outputs" if info.named_outputs else "wf_citations"
    lines: list[tuple[str, str]] = [
        (f"# One {info.display_name} {info.workflow_term} run per row of the source asset; "
         "the results table", ""),
        (f"# (input columns, then wf_status, wf_result, {answer}, ...) is this asset.", ""),
        (f"service: {info.name}", ""),
        *_SCAFFOLD_EXAMPLES.get(info.name, _GENERIC_EXAMPLE),
        (f'api_key: "{{{{ env.{info.api_key_variable} }}}}"',
         "stays an EnvVar: never shown or logged"),
        (f'# base_url: "{{{{ env.{info.base_url_variable} }}}}"', ""),
        *(_OUTPUT_EXAMPLES if info.named_outputs else []),
        ("# output_schema: {score: float64, tags: list<string>}",
         "the answer's JSON fields, typed (wf_score...)"),
        (f"# rate: {info.default_rate}", ""),
        (f"# concurrency: {info.default_concurrency}", ""),
        ("# incremental: true", "reuse the answers of unchanged rows"),
        ("# keep_columns: [id, text]", ""),
        ('# partitions: {cadence: daily, start_date: "2026-01-01"}', ""),
        ("# schedule: {hour_of_day: 2}", ""),
        ("# or, instead of a schedule, Dagster's declarative automation:", ""),
        ("# automation_condition: \"{{ dg.AutomationCondition.on_cron('0 2 * * *') }}\"", ""),
        ("# group_name: enrichment", ""),
        ("# The results are stored as Parquet, <parquet_dir>/<asset key>.parquet (default:", ""),
        ("# the Dagster instance's storage folder); io_manager_key: another IO manager.", ""),
        ("# parquet_dir: data/enriched", "a folder, or s3://bucket/prefix"),
        ("# The upstream asset, whose value is a DataFrame:", ""),
        ("source: SOURCE", ""),
    ]  # fmt: skip
    body = "".join(
        f"  {line.ljust(36)}  # {comment}\n" if comment else f"  {line}\n"
        for line, comment in lines
    )
    return f"type: TYPE_NAME\n\nattributes:\n{body}"
