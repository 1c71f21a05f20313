"""The workflows the emulator serves when no configuration file names any.

They mirror the services' own documentation so its examples work unchanged against the
emulator (only the base URL swapped): AI Tutor's ``wf_abc123`` takes a ``story``, and the
Runchat flow ``demo`` takes the parameters of the Run endpoint's examples, or a webhook
body. The others give the demo and the tests something realistic: several variables,
citations derived from the inputs, a required Runchat input, an unpublished workflow,
answers that are JSON (AI Tutor's ``wf_lead_score``, wrapped in a fence and a sentence as
models do) and a flow with typed outputs (Runchat's ``lead-scorer``: a number, a boolean,
an array and an object).
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
        WorkflowSpec(
            id="wf_lead_score",
            service="aitutor",
            name="Lead scorer (JSON answer)",
            variables=["company", "score", "tag"],
            template=(
                "Here is my assessment:\n```json\n"
                '{"label": "{{company}}", "score": {{score}}, "tags": ["{{tag}}", "b2b"]}'
                "\n```\nLet me know if you need more."
            ),
        ),
        WorkflowSpec(
            id="lead-scorer",
            service="runchat",
            name="Lead scorer (typed outputs)",
            inputs=[
                ParamSpec("company_n1", "Company", "string", "The company.", required=True),
                ParamSpec("score_n1", "Score", "number", "A score to echo."),
            ],
            outputs=[
                ParamSpec(
                    "summary_n2",
                    "Summary",
                    "string",
                    "A sentence.",
                    template="{{company_n1}} scores {{score_n1}} [{{hash}}]",
                ),
                ParamSpec("score_n2", "Score", "number", "The score.", template="{{score_n1}}"),
                ParamSpec("hot_n2", "Hot", "boolean", "A hot lead?", template="true"),
                ParamSpec("tags_n2", "Tags", "array", "Tags.", template=["{{company_n1}}", "b2b"]),
                ParamSpec(
                    "details_n2",
                    "Details",
                    "object",
                    "More.",
                    template='{"company": "{{company_n1}}"}',
                ),
            ],
            latency=LatencySpec(0.0, 0.0),
        ),
    ]
