"""The example's assets: the companies that arrive each day, their AI Tutor summaries, and a
summary per industry and country. (The Runchat industry classification is declared in
YAML: ``defs/company_industries/defs.yaml``.)"""

# No `from __future__ import annotations`: Dagster reads the asset functions' annotations.

import dagster as dg
import pandas as pd
import pyarrow as pa

from dagster_runwf import (
    AITutorWorkflow,
    AnswerCheck,
    AnswerChecks,
    EnrichmentSettings,
    enriched_asset,
)

from . import settings

GROUP = "companies"
INDUSTRIES_KEY = dg.AssetKey("company_industries")
"""The Runchat asset built from YAML."""


@dg.asset(partitions_def=settings.DAILY, group_name=GROUP, kinds={"csv", "pandas"})
def companies(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """The companies that arrived on the partition's day (``data/companies.csv``)."""
    # keep_default_na=False, na_values=[""]: only an empty cell is missing. By default
    # read_csv would turn the texts NA, N/A, null... into NaN, and a row with a real value
    # "NA" (Namibia, a name) would fail its workflow run as a missing input.
    table = pd.read_csv(
        settings.DATA_FILE,
        dtype={"founded": "int64", "employees": "int64"},
        keep_default_na=False,
        na_values=[""],
    )
    day: pd.DataFrame = table[table["arrived_on"] == context.partition_key]
    day = day.reset_index(drop=True)
    context.log.info(f"{len(day)} companies arrived on {context.partition_key}")
    return day


PROFILE_FACTS = {"headcount": pa.int64(), "hq": pa.string()}
"""The facts the summary workflow answers as JSON after its paragraph: typed columns
``wf_headcount`` and ``wf_hq`` (and ``wf_parse_error`` for an answer that does not fit)."""


def company_profiles(journal_dir: str) -> dg.AssetsDefinition:
    """A one-paragraph summary of each company, with the pages it cites and its headcount
    and headquarters as typed columns (AI Tutor)."""
    return enriched_asset(
        source=companies,
        workflow=AITutorWorkflow(
            settings.aitutor_workflow_id(),
            ["company", "domain", "industry", "country", "employees", "city"],
            output_schema=PROFILE_FACTS,
        ),
        settings=EnrichmentSettings(
            columns={"company": "name"},
            keep_columns=["company_id", "name", "domain", "country", "industry"],
            journal_dir=journal_dir,
            incremental=True,
            # Beyond the status: every summary must cite its sources, and an answer holding
            # "undefined" (a template variable not sent) keeps industry_summary from running.
            answer_checks=AnswerChecks(
                citation_rate=AnswerCheck(threshold=0.9),
                undefined_answers=AnswerCheck(blocking=True),
            ),
        ),
        name="company_profiles",
        partitions_def=settings.DAILY,
        group_name=GROUP,
        description="A summary of each company with web citations, and its headcount and "
        "headquarters as typed columns, written by an AI Tutor workflow (one run per company).",
    )


SUMMARY_COLUMNS = [
    "industry",
    "country",
    "companies",
    "profiled",
    "failed",
    "failure_rate",
    "citations",
    "headcount",
    "classified",
]


@dg.asset(
    ins={
        # Summarise the days enriched so far, not only complete backfills.
        "profiles": dg.AssetIn("company_profiles", metadata={"allow_missing_partitions": True}),
        "industries": dg.AssetIn(INDUSTRIES_KEY, metadata={"allow_missing_partitions": True}),
    },
    group_name=GROUP,
    kinds={"pandas"},
)
def industry_summary(
    context: dg.AssetExecutionContext, profiles: pd.DataFrame, industries: pd.DataFrame
) -> pd.DataFrame:
    """Per industry and country: companies, how many got a summary or failed (and the
    failure rate), citations collected, the headcount the summaries reported (the typed
    column ``wf_headcount``), and how many the Runchat flow classified."""
    if profiles.empty:
        nothing_yet: pd.DataFrame = pd.DataFrame(columns=SUMMARY_COLUMNS)
        return nothing_yet
    rows = profiles.assign(
        profiled=profiles["wf_status"] == "succeeded",
        failed=profiles["wf_status"] == "failed",
        citations=profiles["wf_citations"].map(len),
    )
    classified = set()
    if not industries.empty:
        done = industries[industries["wf_status"] == "succeeded"]
        classified = set(done["company_id"])
    rows["classified"] = rows["company_id"].isin(classified)
    summary: pd.DataFrame = (
        rows.groupby(["industry", "country"], as_index=False)
        .agg(
            companies=("company_id", "count"),
            profiled=("profiled", "sum"),
            failed=("failed", "sum"),
            citations=("citations", "sum"),
            headcount=("wf_headcount", "sum"),
            classified=("classified", "sum"),
        )
        .sort_values(["companies", "industry", "country"], ascending=[False, True, True])
        .reset_index(drop=True)
    )
    # Null for the companies whose summary failed (or did not fit): summed over the rest.
    summary["headcount"] = summary["headcount"].astype("int64")
    summary["failure_rate"] = (summary["failed"] / summary["companies"]).round(4)
    summary = summary[SUMMARY_COLUMNS]
    total, failed = int(summary["companies"].sum()), int(summary["failed"].sum())
    context.add_output_metadata(
        {
            "companies": total,
            "failed": failed,
            "failure_rate": round(failed / total, 4) if total else 0.0,
            "industries": int(summary["industry"].nunique()),
            "preview": dg.MetadataValue.md(_markdown(summary.head(10))),
        }
    )
    return summary


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([header, rule, *body])
