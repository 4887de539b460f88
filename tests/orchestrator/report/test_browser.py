"""The HTML report in a real headless browser (Debian's chromium) at a laptop's 1280 px: it loads
from disk alone with no error, every image loads, the success metrics are on the first screen,
and the tables sort. A screenshot of the first screen is left for a developer to look at."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.orchestrator.report.conftest import FinishedSweep

CHROMIUM = shutil.which("chromium")
WINDOW = (1280, 800)
ERROR_HOOK = """
<script>
// First in <head>: errors of any later script or resource, and console.error calls.
window.reportErrors = [];
window.addEventListener("error", e => reportErrors.push(e.message || `failed to load ${e.target.src || e.target.href}`), true);
const originalConsoleError = console.error;
console.error = (...args) => { reportErrors.push(args.join(" ")); originalConsoleError(...args); };
</script>
"""
CHECK_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0);
  document.body.dataset.images = document.images.length;
  document.body.dataset.broken = JSON.stringify(broken.map(i => i.getAttribute("src")));
  document.body.dataset.errors = JSON.stringify(reportErrors);
  // Every resource the page fetched: none may leave the disk.
  const fetched = [location.href, ...performance.getEntriesByType("resource").map(r => r.name)];
  document.body.dataset.remote = JSON.stringify(fetched.filter(url => !url.startsWith("file:")));
  // The block and everything in it: text overflowing a card reaches beyond the block's own box.
  const success = document.getElementById("success");
  const boxes = [success, ...success.querySelectorAll("*")].map(e => e.getBoundingClientRect());
  const right = Math.max(...boxes.map(b => b.right)), bottom = Math.max(...boxes.map(b => b.bottom));
  document.body.dataset.success = JSON.stringify([right, bottom, window.innerWidth, window.innerHeight]);
  const table = document.querySelector("#tms_5-2 table.runs");
  const header = [...table.tHead.rows[0].cells].find(th => th.textContent.trim() === "C[linear1]");
  header.click(); header.click();  // ascending, then descending
  document.body.dataset.sorted = JSON.stringify([...table.tBodies[0].rows].map(r => r.cells[0].textContent.trim()));
});
</script>
"""


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--hide-scrollbars",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


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
    html = (report / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing to fetch from a server
    page.write_text(
        html.replace("<head>", "<head>" + ERROR_HOOK).replace("</body>", CHECK_SCRIPT + "</body>")
    )

    dom = run_chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    screenshot = tmp_path / "report_first_screen.png"
    run_chromium(tmp_path, f"--screenshot={screenshot}", (report / "index.html").as_uri())
    print(f"Screenshot of the report's first screen: {screenshot}")
    assert screenshot.stat().st_size > 0

    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:2000]
    attributes = dict(re.findall(r'data-(\w+)="([^"]*)"', body.group(1)))
    assert int(attributes["images"]) == 6  # losses, alive vs C, best CI of two experiments
    assert json.loads(attributes["broken"].replace("&quot;", '"')) == []
    assert json.loads(attributes["errors"].replace("&quot;", '"')) == []
    assert json.loads(attributes["remote"].replace("&quot;", '"')) == []
    right, bottom, width, height = json.loads(attributes["success"].replace("&quot;", '"'))
    # The window's own bars take some of its height: the viewport is what a reader sees first.
    assert width == WINDOW[0] and height <= WINDOW[1]
    assert right < width and bottom < height  # the success metrics need no scrolling
    assert json.loads(attributes["sorted"].replace("&quot;", '"')) == [
        "tms_5-2-C[linear1]=10",
        "tms_5-2-C[linear1]=5",
    ]
