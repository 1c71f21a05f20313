"""``dg scaffold defs dagster_runwf.EnrichedAssetComponent <path>``: a commented
``defs.yaml`` for one service, to be filled in (``--json-params '{"service": "runchat",
"source": "raw/notes"}'``).
"""

import textwrap
from typing import Literal

import dagster as dg
from pydantic import BaseModel

Service = Literal["aitutor", "runchat"]
"""The services a ``defs.yaml`` may name."""


class EnrichedAssetScaffoldParams(BaseModel):
    """Options of ``dg scaffold defs dagster_runwf.EnrichedAssetComponent --json-params``."""

    service: Service = "aitutor"
    source: str = "my_table"


class EnrichedAssetScaffolder(dg.Scaffolder[EnrichedAssetScaffoldParams]):
    """Writes a commented ``defs.yaml`` for one service, to be filled in."""

    @classmethod
    def get_scaffold_params(cls) -> type[EnrichedAssetScaffoldParams]:
        """``service`` (aitutor or runchat) and ``source`` (the upstream asset key)."""
        return EnrichedAssetScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[EnrichedAssetScaffoldParams]) -> None:
        """Write ``defs.yaml`` (or, with ``--format python``, Dagster's ``component.py``)."""
        if request.scaffold_format == "python":
            from dagster.components.component_scaffolding import scaffold_component

            scaffold_component(request, {})
            return
        params = request.params or EnrichedAssetScaffoldParams()
        text = (
            _SCAFFOLD_TEMPLATES[params.service]
            .replace("TYPE_NAME", request.type_name)
            .replace("SOURCE", params.source)
        )
        path = request.target_path / "defs.yaml"
        if request.append and path.exists():
            text = path.read_text(encoding="utf-8").rstrip("\n") + "\n---\n" + text
        path.write_text(text, encoding="utf-8")


_SCAFFOLD_TEMPLATES = {
    "aitutor": textwrap.dedent(
        """\
        type: TYPE_NAME

        attributes:
          # One AI Tutor workflow run per row of the source asset; the results table
          # (input columns, then wf_status, wf_result, wf_citations, ...) is this asset.
          service: aitutor
          workflow: wf_abc123                   # the workflow's id
          inputs: [story]                       # its template variables ({{story}})
          columns: {story: text}                # variable -> column, where names differ
          api_key: "{{ env.AITUTOR_API_KEY }}"  # stays an EnvVar: never shown or logged
          # base_url: "{{ env.AITUTOR_BASE_URL }}"
          # rate: 10/s
          # concurrency: 16
          # incremental: true                   # reuse the answers of unchanged rows
          # keep_columns: [id, text]
          # partitions: {cadence: daily, start_date: "2026-01-01"}
          # schedule: {hour_of_day: 2}
          # group_name: enrichment
          # The upstream asset, whose value is a DataFrame:
          source: SOURCE
        """
    ),
    "runchat": textwrap.dedent(
        """\
        type: TYPE_NAME

        attributes:
          # One Runchat flow run per row of the source asset; the results table
          # (input columns, then wf_status, wf_result, wf_outputs, ...) is this asset.
          service: runchat
          workflow: my-flow-id                  # the flow's id
          inputs: [query_nodeA]                 # input ids (paramId_nodeId)
          columns: {query_nodeA: question}      # input id -> column
          api_key: "{{ env.RUNCHAT_API_KEY }}"  # stays an EnvVar: never shown or logged
          # base_url: "{{ env.RUNCHAT_BASE_URL }}"
          # result_output: Answer               # output label or id of the text result
          # output_columns: {answer: Answer}    # new column -> output label or id
          # rate: 10/min
          # incremental: true
          # partitions: {cadence: daily, start_date: "2026-01-01"}
          # schedule: {hour_of_day: 2}
          # The upstream asset, whose value is a DataFrame:
          source: SOURCE
        """
    ),
}
