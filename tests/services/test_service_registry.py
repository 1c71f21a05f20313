"""One description per service: the registry, what reads it, and the Runchat naming rules the
command and the Dagster pre-flight share."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import ValidationError

from dagster_runwf import (
    AITutorWorkflow,
    ConfigError,
    EnrichedAssetComponent,
    RunchatResource,
    RunchatWorkflow,
    WorkflowNotFoundError,
    enriched_asset,
)
from dagster_runwf.emulator import Emulator
from dagster_runwf.integration.resources import RESOURCE_CLASSES, resource_class
from dagster_runwf.integration.scaffold import scaffold_text
from dagster_runwf.services import aitutor, runchat
from dagster_runwf.services.base import Workflow
from dagster_runwf.services.http import HttpResponse
from dagster_runwf.services.outcome import Outcome
from dagster_runwf.services.rate import Rate
from dagster_runwf.services.registry import SERVICE_NAMES, SERVICES, check_settings, service_info
from dagster_runwf.services.runchat_schema import (
    Parameter,
    RunchatSchema,
    check_inputs,
    check_output,
    resolve_inputs,
    schema_fingerprint,
)
from dagster_runwf.services.service_info import ServiceInfo
from dagster_runwf.services.values import JsonValue

from ..conftest import KEY

# -- the registry ---------------------------------------------------------------------------


def test_every_service_module_is_registered_and_its_workflow_points_at_it() -> None:
    assert SERVICE_NAMES == ("aitutor", "runchat")
    for module, cls in ((aitutor, AITutorWorkflow), (runchat, RunchatWorkflow)):
        info = module.SERVICE
        assert SERVICES[info.name] is info and service_info(info.name) is info
        assert info.workflow is cls and cls.info is info
        assert (cls.service, cls.display_name) == (info.name, info.display_name)
        assert cls.default_base_url == info.default_base_url
        assert cls.default_rate == info.default_rate
        assert cls.default_concurrency == info.default_concurrency
        assert cls.reports_credits is info.reports_credits


def test_an_unknown_service_is_named_with_the_services() -> None:
    with pytest.raises(ConfigError, match="unknown service 'dify'; the services are aitutor, run"):
        service_info("dify")


def test_every_service_has_a_dagster_resource() -> None:
    assert set(RESOURCE_CLASSES) == set(SERVICE_NAMES)
    assert resource_class("runchat") is RunchatResource
    with pytest.raises(ConfigError, match="no Dagster resource for the service 'dify'"):
        resource_class("dify")


def test_an_assets_default_resource_key_is_its_services() -> None:
    for cls, args in ((AITutorWorkflow, ["x"]), (RunchatWorkflow, ["x_n"])):
        asset = enriched_asset(source="rows", workflow=cls("wf", args))
        assert asset.required_resource_keys >= {cls.info.default_resource_key}


def test_settings_a_service_does_not_take_are_refused_naming_who_does() -> None:
    info = aitutor.SERVICE
    check_settings(info, {})
    with pytest.raises(ConfigError, match=r"^--webhook, --result-output: only for Runchat flows"):
        check_settings(info, {"webhook": "--webhook", "result_output": "--result-output"})
    with pytest.raises(ConfigError, match="output_columns: only for Runchat flows"):
        check_settings(info, {"output_columns": "output_columns"})
    check_settings(runchat.SERVICE, {"webhook": "webhook", "output_columns": "output_columns"})
    with pytest.raises(ConfigError, match="webhook: not a setting of AI Tutor workflows"):
        info.build_workflow("wf", ["x"], webhook=True)
    built = runchat.SERVICE.build_workflow("f", ["x_n"], result_output="A", webhook=False)
    assert isinstance(built, RunchatWorkflow) and built.result_output == "A"
    assert not built.webhook


# -- errors without a workflow --------------------------------------------------------------


def test_free_calls_classify_errors_without_a_workflow() -> None:
    missing = HttpResponse(404, {}, json.dumps({"error": "not found"}).encode())
    with pytest.raises(WorkflowNotFoundError, match="base_url") as balance:
        aitutor.parse_balance(missing)
    assert "'balance'" not in str(balance.value), "no made-up workflow id"
    with pytest.raises(WorkflowNotFoundError, match="workflow id 'my-flow'"):
        runchat.parse_schema("my-flow", missing)
    refused = HttpResponse(403, {}, json.dumps({"error": "You have used all credits"}).encode())
    assert type(runchat.SERVICE.error_for(refused)).__name__ == "CreditsExhaustedError"


# -- a third service is one module --------------------------------------------------------


class EchoWorkflow(Workflow):
    """The smallest service there is: it answers its inputs back."""

    def build_body(self, inputs: dict[str, JsonValue]) -> JsonValue:
        return inputs

    def run_path(self) -> str:
        return f"echo/{self.workflow_id}"

    def parse_success(self, payload: Any, response: HttpResponse) -> Outcome:
        return Outcome(result=json.dumps(payload))


ECHO_SERVICE = ServiceInfo(
    name="echo",
    display_name="Echo",
    workflow=EchoWorkflow,
    default_base_url="https://echo.example.com/v1",
    default_rate=Rate(5, 1.0),
    default_concurrency=4,
    api_key_variable="ECHO_API_KEY",
    base_url_variable="ECHO_BASE_URL",
    default_resource_key="echo",
)


def test_a_new_service_is_one_service_info_and_one_workflow_class() -> None:
    flow = ECHO_SERVICE.build_workflow("w1", ["text"])
    assert isinstance(flow, EchoWorkflow)
    assert (flow.service, flow.display_name, flow.default_concurrency) == ("echo", "Echo", 4)
    assert flow.prepare({"text": "hi"}).request.path == "echo/w1"
    text = scaffold_text(ECHO_SERVICE)
    assert "service: echo" in text and '"{{ env.ECHO_API_KEY }}"' in text
    assert "workflow: my-workflow-id" in text and "# rate: 5/s" in text
    with pytest.raises(TypeError, match="already the workflow of ServiceInfo\\('echo'\\)"):
        ServiceInfo(**{**vars(ECHO_SERVICE), "name": "echo2"})


# -- the YAML component -------------------------------------------------------------------


def test_the_yaml_service_is_a_choice_of_the_registered_services() -> None:
    with pytest.raises(ValidationError, match="'aitutor' or 'runchat'"):
        EnrichedAssetComponent(service="dify", workflow="w", source="s")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"result_output": "Answer"}, "result_output: only for Runchat flows"),
        ({"webhook": True}, "webhook: only for Runchat flows"),
        ({"output_columns": {"a": "Answer"}}, "output_columns: only for Runchat flows"),
    ],
)
def test_a_yaml_setting_of_another_service_is_refused(
    settings: dict[str, Any], message: str
) -> None:
    component = EnrichedAssetComponent(
        service="aitutor", workflow="wf", source="s", inputs=["a"], **settings
    )
    with pytest.raises(ConfigError, match=message):
        component.build_workflow()


# -- Runchat: naming inputs and outputs ---------------------------------------------------

SCHEMA = RunchatSchema(
    name="Demo flow",
    inputs=(
        Parameter("prompt_xyz", "Prompt", "string"),
        Parameter("query_nodeA", "Query", "string"),
        Parameter("query_nodeB", "Other", "string"),
        Parameter("twin_1", "Twin", "string"),
        Parameter("twin_2", "twin", "string"),
    ),
    outputs=(Parameter("answer_out1", "Answer", "string"),),
)
FLOW = runchat.SERVICE.describe("demo")


def test_inputs_are_named_by_id_or_unique_label() -> None:
    resolved = resolve_inputs(FLOW, SCHEMA, {"query": "q", "prompt_xyz": "p"}, ["q", "p"])
    assert resolved == {"query_nodeA": "q", "prompt_xyz": "p"}
    assert resolve_inputs(FLOW, SCHEMA, {}, ["query_nodeB", "x"]) == {"query_nodeB": "query_nodeB"}


@pytest.mark.parametrize(
    ("mapping", "columns", "message"),
    [
        ({"Question": "q"}, ["q"], r"--map Question=q: Runchat flow 'demo' \(Demo flow\) has no "
         r"input 'Question'; its inputs are prompt_xyz \(Prompt\), query_nodeA \(Query\)"),
        ({"TWIN": "q"}, ["q"], "several inputs of .* are labelled 'TWIN' .twin_1, twin_2."),
        ({"Query": "q", "query_nodeA": "r"}, ["q", "r"], "maps the input 'query_nodeA' .* twice"),
        ({}, ["x"], "nothing to send to Runchat flow 'demo' .* with --map INPUT=COLUMN"),
    ],
)  # fmt: skip
def test_bad_input_names_are_explained(
    mapping: dict[str, str], columns: Sequence[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_inputs(FLOW, SCHEMA, mapping, columns, setting="--map")


def test_inputs_sent_by_id_and_outputs_by_id_or_label_are_checked() -> None:
    check_inputs(FLOW, SCHEMA, ["query_nodeA"])
    with pytest.raises(ConfigError) as unknown:
        check_inputs(FLOW, SCHEMA, ["Query", "nope"])
    text = str(unknown.value)
    assert text.startswith("inputs ['Query', 'nope']: Runchat flow 'demo' (Demo flow) has no ")
    assert "query_nodeA (Query)" in text and "'Query' is the label of query_nodeA" in text
    check_output(FLOW, SCHEMA, "Answer", setting="result_output")
    check_output(FLOW, SCHEMA, "answer_out1", setting="result_output")
    with pytest.raises(ConfigError, match=r"citations_output 'Links': .* outputs are answer_out1"):
        check_output(FLOW, SCHEMA, "Links", setting="citations_output")


@pytest.mark.parametrize(
    ("workflow", "message"),
    [
        (RunchatWorkflow("demo", ["Query"]),
         r"inputs \['Query'\]: Runchat flow 'demo' \(Demo flow\) has no such input; its inputs "
         r"are prompt_xyz123 \(Prompt\), .*'Query' is the label of query_nodeA"),
        (RunchatWorkflow("demo", ["query_nodeA"], result_output="Reply"),
         "result_output 'Reply': Runchat flow 'demo' .* has no such output; its outputs are "
         r"answer_out1 \(Answer\), sources_out2 \(Sources\)"),
        (RunchatWorkflow("demo", ["body"], webhook=True, citations_output="Links"),
         "citations_output 'Links'"),
    ],
)  # fmt: skip
def test_the_resources_pre_flight_uses_the_same_rules(
    emulator: Emulator, workflow: RunchatWorkflow, message: str
) -> None:
    resource = RunchatResource(api_key=KEY, base_url=emulator.runchat_url)
    with pytest.raises(ConfigError, match=message):
        resource.preflight(workflow)


def test_a_pre_flight_that_passes_says_what_it_found(emulator: Emulator) -> None:
    resource = RunchatResource(api_key=KEY, base_url=emulator.runchat_url)
    checked = resource.preflight(RunchatWorkflow("demo", ["query_nodeA"], result_output="Answer"))
    fingerprint = schema_fingerprint(resource.flow_schema("demo"))
    assert checked == {
        "runwf/flow_name": "Demo flow",
        "runwf/unmapped_inputs": ["maxTokens_abc456", "prompt_xyz123"],
        "runwf/flow_schema": fingerprint,
    }
    webhook = RunchatWorkflow("demo", ["anything"], webhook=True)
    assert resource.preflight(webhook) == {
        "runwf/flow_name": "Demo flow",
        "runwf/flow_schema": fingerprint,
    }
