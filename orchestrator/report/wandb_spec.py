"""<sweep>/report/wandb_report.json: the sweep's W&B report as every report build writes it, with
no network; `spd-sweep report <id> --wandb` publishes it later (orchestrator.report.wandb_report).

The spec is ours, not wandb_workspaces' serialisation: that needs W&B's servers (a runset looks
up its project's id there). It names what the report shows by run tags and metric keys; the
entity may be unknown when it is written (offline, no WANDB_ENTITY) and is filled in at publish
time.
"""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from spd.atomic_io import atomic_write_text
from spd.strict_model import StrictModel

WANDB_REPORT_SPEC = "wandb_report.json"
"""The spec's file name in the sweep's report directory."""


class LinePlot(StrictModel):
    metric: str
    log_y: bool


class Markdown(StrictModel):
    kind: Literal["markdown"] = "markdown"
    text: str


class Heading(StrictModel):
    kind: Literal["heading"] = "heading"
    level: Literal[2, 3]
    text: str


class TableOfContents(StrictModel):
    kind: Literal["table_of_contents"] = "table_of_contents"


class Code(StrictModel):
    kind: Literal["code"] = "code"
    code: str
    language: str


class RunPanels(StrictModel):
    """A panel grid over the runs that carry all of `tags`."""

    kind: Literal["runs"] = "runs"
    name: str
    tags: list[str]
    line_plots: list[LinePlot]
    figures: list[str] = Field(description="Image keys (`figures/<name>`) shown in a media browser.")
    run_comparer: bool


Block = Annotated[Markdown | Heading | TableOfContents | Code | RunPanels, Field(discriminator="kind")]


class WorkspaceSection(StrictModel):
    name: str
    line_plots: list[LinePlot]


class Workspace(StrictModel):
    """A saved workspace view of the project, filtered to the runs that carry all of `tags`."""

    name: str
    tags: list[str]
    sections: list[WorkspaceSection]


class WandbReportSpec(StrictModel):
    entity: str | None = Field(
        description="None: unknown when written; publishing takes WANDB_ENTITY, else the "
        "default entity of the W&B login."
    )
    project: str
    title: str
    description: str
    blocks: list[Block]
    workspaces: list[Workspace]

    def write(self, path: Path) -> None:
        atomic_write_text(path, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> "WandbReportSpec":
        return cls.model_validate_json(path.read_text())
