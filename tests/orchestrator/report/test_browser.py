"""The HTML report in a real headless browser (Debian's chromium): every image loads, and the
tables sort."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.orchestrator.report.conftest import FinishedSweep

CHROMIUM = shutil.which("chromium")
CHECK_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0);
  document.body.dataset.images = document.images.length;
  document.body.dataset.broken = JSON.stringify(broken.map(i => i.getAttribute("src")));
  const table = document.querySelector("#tms_5-2 table.runs");
  const header = [...table.tHead.rows[0].cells].find(th => th.textContent.trim() === "C[linear1]");
  header.click(); header.click();  // ascending, then descending
  document.body.dataset.sorted = JSON.stringify([...table.tBodies[0].rows].map(r => r.cells[0].textContent.trim()));
});
</script>
"""


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)
def test_report_renders_in_headless_chromium_without_missing_images(
    finished_sweep: FinishedSweep, tmp_path: Path
) -> None:
    sweep_copy = tmp_path / "sweep"
    shutil.copytree(finished_sweep.sweep.path, sweep_copy)
    report = sweep_copy / "report"
    page = report / "browser_check.html"  # beside index.html: the same relative links
    page.write_text(
        (report / "index.html").read_text().replace("</body>", CHECK_SCRIPT + "</body>")
    )

    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout

    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:2000]
    attributes = dict(re.findall(r'data-(\w+)="([^"]*)"', body.group(1)))
    assert int(attributes["images"]) == 6  # losses, alive vs C, best CI of two experiments
    assert json.loads(attributes["broken"].replace("&quot;", '"')) == []
    assert json.loads(attributes["sorted"].replace("&quot;", '"')) == [
        "tms_5-2-C[linear1]=10",
        "tms_5-2-C[linear1]=5",
    ]
