"""The workflows the emulator serves when no configuration file names any.

They mirror the services' own documentation so its examples work unchanged against the
emulator (only the base URL swapped): AI Tutor's ``wf_abc123`` takes a ``story``, and the
Runchat flow ``demo`` takes the parameters of the Run endpoint's examples, or a webhook
body. The others give the demo and the tests something realistic: several variables,
citations derived from the inputs, a required Runchat input, an unpublished workflow.
"""

from __future__ import annotations

from dagster_runwf.emulator.workflow_spec import LatencySpec, ParamSpec, WorkflowSpec


def builtin_workflows() -> list[WorkflowSpec]:
    """A fresh list of the built-in workflows (callers may mutate it)."""
    return [
        WorkflowSpec(
            id="wf_abc123",
            service="aitutor",
            name="Story writer",
            variables=["story"],
            template="Once upon a time: {{story}}.",
            citations=[],
        ),
        WorkflowSpec(
            id="wf_company_profile",
            service="aitutor",
            name="Company profile",
            variables=["company", "country"],
            template="Profile of {{company}}, a company based in {{country}}.",
            citations=[
                "https://en.wikipedia.org/wiki/{{company}}",
                "https://companies.example.com/{{country}}/{{company}}",
            ],
        ),
        WorkflowSpec(
            id="wf_summarize",
            service="aitutor",
            name="Summarizer",
            variables=["text"],
            template="Summary: {{text}}",
        ),
        WorkflowSpec(
            id="wf_draft",
            service="aitutor",
            name="Unpublished draft",
            variables=["text"],
            template="Draft: {{text}}",
            published=False,
        ),
        WorkflowSpec(
            id="demo",
            service="runchat",
            name="Demo flow",
            inputs=[
                ParamSpec("prompt_xyz123", "Prompt", "string", "What to write about."),
                ParamSpec("maxTokens_abc456", "Max tokens", "number", "Upper bound on the answer."),
                ParamSpec("query_nodeA", "Query", "string", "A question to answer."),
            ],
            outputs=[
                ParamSpec(
                    "answer_out1",
                    "Answer",
                    "string",
                    "The generated answer.",
                    template="Answer for {{inputs}} [{{hash}}]",
                ),
                ParamSpec(
                    "sources_out2",
                    "Sources",
                    "array",
                    "Where the answer came from.",
                    template=[
                        "https://sources.example.com/{{hash}}/1",
                        "https://sources.example.com/{{hash}}/2",
                    ],
                ),
            ],
            accepts_webhook=True,
        ),
        WorkflowSpec(
            id="translate",
            service="runchat",
            name="Translator",
            inputs=[
                ParamSpec("text_n1", "Text", "string", "Text to translate.", required=True),
                ParamSpec("language_n1", "Language", "string", "Target language."),
            ],
            outputs=[
                ParamSpec(
                    "translation_n2",
                    "Translation",
                    "string",
                    "The translated text.",
                    template="[{{language_n1}}] {{text_n1}} [{{hash}}]",
                ),
            ],
            latency=LatencySpec(0.0, 0.0),
        ),
    ]
