"""Bad sweep and search inputs: each stops spd-sweep with a one-line error naming what is wrong,
a non-zero exit code and no traceback, before anything is written to the sweeps directory."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli.main import main

OK_SWEEP = "tms_5-2:\n  lr: {values: [1.0e-3]}\n"
OK_SEARCH = (
    "experiment: tms_5-2\n"
    "search: {lr: {low: 0.001, high: 0.01}}\n"
    "objectives: {loss/stochastic_recon: minimize}\n"
)
USAGE = 2
"""click's exit code for a bad command line; other bad inputs exit with 1."""


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]
    message: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    exit_code: int = 1
    on_existing_sweep: bool = False
    """A sweep exists first (a dry run of OK_SWEEP); `{sweep}` in args is its id."""


def sweep(text: str) -> dict[str, str | bytes]:
    return {"s.yaml": text}


def search(text: str) -> dict[str, str | bytes]:
    return {"q.yaml": text}


GRID = ["--sweep", "s.yaml", "--dry-run"]
SEARCH = ["search", "q.yaml", "--n_trials", "2", "--dry-run", "--local"]

# fmt: off
CASES = [
    # --- the command line
    Case("unknown experiment", ["--experiments", "nosuch", "--dry-run"], "unknown experiment(s) nosuch; known: tms_5-2", exit_code=USAGE),
    Case("no experiment", ["--experiments", ",", "--dry-run"], "unknown experiment(s) (none given)", exit_code=USAGE),
    Case("grid and search at once", ["search", "q.yaml", "--sweep", "s.yaml"], "--sweep (a grid) and `search` (a search) are two kinds of sweep", sweep(OK_SWEEP), USAGE),
    Case("n_trials on a grid", [*GRID, "--n_trials", "3"], "--n_trials: only for searches", sweep(OK_SWEEP), USAGE),
    Case("storage on a grid", [*GRID, "--storage", "sqlite:///x.db"], "--storage: only for searches", sweep(OK_SWEEP), USAGE),
    Case("time 0", [*GRID, "--time", "0"], "--time: time '0' is zero, which SLURM takes as no limit", sweep(OK_SWEEP), USAGE),
    Case("time not a time", [*GRID, "--time", "soon"], "--time: time 'soon' is not a SLURM time", sweep(OK_SWEEP), USAGE),
    Case("memory not a size", [*GRID, "--mem", "8X"], "--mem: '8X' is not a SLURM memory size", sweep(OK_SWEEP), USAGE),
    Case("partition with a shell command", [*GRID, "--partition", "gpu;id"], "--partition: 'gpu;id' is not a SLURM name", sweep(OK_SWEEP), USAGE),
    Case("SLURM option with --local", [*GRID, "--local", "--partition", "gpu"], "--partition: SLURM options; --local runs the jobs here", sweep(OK_SWEEP), USAGE),
    Case("GPUs for a CPU sweep", [*GRID, "--cpu", "--gpus", "1"], "--cpu asks for no GPU", sweep(OK_SWEEP), USAGE),
    Case("sbatch flag spd-sweep sets", [*GRID, "--sbatch", "array=1"], "Error: --sbatch array: spd-sweep sets --array itself", sweep(OK_SWEEP), USAGE),
    Case("sbatch value with a newline", [*GRID, "--sbatch", "constraint=a\nb"], "Error: --sbatch constraint: 'a\\nb' contains a newline", sweep(OK_SWEEP), USAGE),
    Case("job suffix with a newline", [*GRID, "--job_suffix", "a\nb"], "--job_suffix: 'a\\nb' contains a newline", sweep(OK_SWEEP)),
    Case("template that does not exist", [*GRID, "--template", "nosuch"], "no template 'nosuch': give a file or one of job_array.sbatch.j2", sweep(OK_SWEEP)),
    Case("no agents", [*GRID, "--n_agents", "0"], "0 is not in the range x>=1", sweep(OK_SWEEP), USAGE),
    # --- the commands: search and resume were flags of the grid; options go after a command
    Case("--optuna, now a command", ["--optuna", "q.yaml", "--n_trials", "2", "--dry-run"], "--optuna FILE is now a command: spd-sweep search FILE --n_trials N", search(OK_SEARCH), USAGE),
    Case("--resume, now a command", ["--resume", "{sweep}", "--retry-failed"], "--resume SWEEP_ID is now a command: spd-sweep resume SWEEP_ID", exit_code=USAGE, on_existing_sweep=True),
    Case("grid options before search", ["--local", "--cpu", "search", "q.yaml", "--n_trials", "2", "--dry-run"], "--cpu --local before `search`: a command's options go after its name (spd-sweep search ... --cpu --local)", search(OK_SEARCH), USAGE),
    Case("grid option before resume", ["--dry-run", "resume", "{sweep}"], "--dry-run before `resume`: a command's options go after its name", exit_code=USAGE, on_existing_sweep=True),
    Case("grid option before status", ["--sweep", "s.yaml", "status", "{sweep}"], "--sweep before `status`", sweep(OK_SWEEP), USAGE, on_existing_sweep=True),
    Case("search without a file", ["search", "--n_trials", "2", "--dry-run"], "Missing argument 'FILE'", exit_code=USAGE),
    Case("resume without a sweep", ["resume", "--local"], "Missing argument 'SWEEP_ID'", exit_code=USAGE),
    Case("unknown command", ["serch", "q.yaml"], "No such command 'serch'", exit_code=USAGE),
    Case("search with an option only grids take", [*SEARCH, "--yes"], "No such option '--yes'", search(OK_SEARCH), USAGE),
    Case("SLURM option with --local in a search", [*SEARCH, "--partition", "gpu"], "--partition: SLURM options; --local runs the jobs here", search(OK_SEARCH), USAGE),
    # --- one job in several processes (data parallel)
    Case("no nodes", [*GRID, "--nodes", "0"], "Invalid value for '--nodes': 0 is not in the range x>=1", sweep(OK_SWEEP), USAGE),
    Case("no processes per node", [*GRID, "--nproc-per-node", "0"], "Invalid value for '--nproc-per-node'", sweep(OK_SWEEP), USAGE),
    Case("fewer GPUs than processes", [*GRID, "--nproc-per-node", "4", "--gpus", "2"], "--gpus 2 (per node) is fewer than --nproc-per-node 4: each process takes one GPU", sweep(OK_SWEEP), USAGE),
    Case("batch that does not split over the processes", [*GRID, "--cpu", "--nodes", "3"], "batch_size 4096 (the global batch) does not split evenly over 3 processes", sweep(OK_SWEEP)),
    Case("batch of one job that does not split", [*GRID, "--nproc-per-node", "2"], "batch_size 4097 (the global batch) does not split evenly over 2 processes", sweep("tms_5-2:\n  batch_size: {values: [4096, 4097]}\n")),
    Case("data parallel with --local", [*GRID, "--local", "--nproc-per-node", "2"], "--local does not: run one decomposition on this machine with `spd-decompose CONFIG --nproc N`, or submit the sweep to SLURM", sweep(OK_SWEEP), USAGE),
    Case("data parallel search", ["search", "q.yaml", "--n_trials", "2", "--dry-run", "--nodes", "2"], "searches do not run data-parallel trials yet", search(OK_SEARCH), USAGE),
    Case("data parallel search, other spelling", [*SEARCH, "--nproc_per_node", "2"], "--nodes/--nproc-per-node: searches do not run data-parallel trials yet", search(OK_SEARCH), USAGE),
    Case("sbatch nodes", [*GRID, "--sbatch", "nodes=2"], "--sbatch nodes: spd-sweep sets --nodes itself; use its --nodes option", sweep(OK_SWEEP), USAGE),
    Case("sbatch tasks per node", [*GRID, "--sbatch", "ntasks-per-node=2"], "--sbatch ntasks-per-node: spd-sweep sets --ntasks-per-node itself; use its --nproc-per-node option", sweep(OK_SWEEP), USAGE),
    # --- the sweep file
    Case("sweep file missing", GRID, "sweep file s.yaml does not exist"),
    Case("sweep file a directory", ["--sweep", ".", "--dry-run"], "sweep file . is a directory"),
    Case("sweep file not UTF-8", GRID, "sweep file s.yaml is not UTF-8 text (byte 19)", sweep(b"tms_5-2:\n  lr: 1.0 \xff\n")),
    Case("sweep file malformed", GRID, "sweep file s.yaml: malformed YAML at line 2", sweep("tms_5-2: [\n")),
    Case("key twice", GRID, "the key 'lr' is given twice in one mapping (lines 2 and 3)", sweep("tms_5-2:\n  lr: 1.0e-3\n  lr: 2.0e-3\n")),
    Case("key twice, dotted and nested", GRID, "losses.faithfulness.coeff is given twice", sweep("tms_5-2:\n  losses.faithfulness.coeff: 1\n  losses: {faithfulness: {coeff: 2}}\n")),
    Case("plain list", GRID, "to sweep, write `seed: {values: [0, 1]}`", sweep("tms_5-2:\n  seed: [0, 1]\n")),
    Case("empty values", GRID, "tms_5-2: lr: `values` must be a non-empty list", sweep("tms_5-2:\n  lr: {values: []}\n")),
    Case("empty mapping", GRID, "tms_5-2: lr: an empty mapping sets nothing", sweep("tms_5-2:\n  lr: {}\n")),
    Case("unknown section", GRID, "unknown experiment section(s) nosuch", sweep("nosuch:\n  lr: 1.0e-3\n")),
    Case("experiment without a section", [*GRID, "--experiments", "tms_5-2,resid_mlp1"], "has no section for resid_mlp1 and no `global:` section", sweep(OK_SWEEP), USAGE),
    Case("unknown config key", GRID, "lrr: unknown key (check its spelling)", sweep("tms_5-2:\n  lrr: {values: [1, 2]}\n")),
    Case("value of the wrong type", GRID, "lr: Input should be a valid number", sweep("tms_5-2:\n  lr: {values: [fast]}\n")),
    Case("pattern that matches no module", GRID, "pattern(s) ['linear9'] match no module; decomposable modules are: linear1, linear2", sweep("tms_5-2:\n  target_module_patterns: [[linear9, 3]]\n")),
    Case("C of a pattern the config lacks", GRID, "pattern 'linear9' is not in target_module_patterns", sweep("tms_5-2:\n  C: {linear9: {values: [3]}}\n")),
    Case("C below 1", GRID, "C must be at least 1", sweep("tms_5-2:\n  C: {linear1: {values: [0]}}\n")),
    # --- the search file
    Case("search without n_trials", ["search", "q.yaml", "--dry-run"], "Missing option '--n_trials'", search(OK_SEARCH), USAGE),
    Case("search file missing", SEARCH, "search file q.yaml does not exist"),
    Case("search file a directory", ["search", ".", "--n_trials", "2", "--dry-run"], "search file . is a directory"),
    Case("objective that is no metric", SEARCH, "objectives: 'loss/stochastic_recn' is not a metric of this run", search(OK_SEARCH.replace("recon", "recn"))),
    Case("search space with invalid configs", SEARCH, "C of pattern 'linear1' is 0; C must be at least 1", search(OK_SEARCH.replace("lr: {low: 0.001, high: 0.01}", "C: {low: 0, high: 5}"))),
    Case("unknown sampler", SEARCH, "sampler.name: Input should be 'tpe', 'random'", search(OK_SEARCH + "sampler: {name: bayes}\n")),
    Case("retry-failed on a search", [*SEARCH, "--retry-failed"], "--retry-failed applies to grid sweeps", search(OK_SEARCH), USAGE),
    # --- existing sweeps
    Case("resume of no sweep", ["resume", "nosuch"], "no sweep 'nosuch' under"),
    Case("resume that changes the jobs", ["resume", "{sweep}", "--cpu"], "resume continues a sweep as defined; it cannot change --cpu", exit_code=USAGE, on_existing_sweep=True),
    Case("n_trials on a resumed grid", ["resume", "{sweep}", "--n_trials", "3"], "--n_trials applies to searches; ", exit_code=USAGE, on_existing_sweep=True),
    Case("resume that changes the sweep file", ["resume", "{sweep}", "--sweep", "s.yaml"], "resume continues a sweep as defined; it cannot change --sweep", sweep(OK_SWEEP), USAGE, on_existing_sweep=True),
    Case("resume with an option only grids take", ["resume", "{sweep}", "--yes"], "No such option '--yes'", exit_code=USAGE, on_existing_sweep=True),
    Case("status of no sweep", ["status", "nosuch"], "no sweep 'nosuch' under"),
    Case("report of no sweep", ["report", "nosuch"], "no sweep 'nosuch' under"),
]
# fmt: on


def files_under(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30 and len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input_stops_with_one_clear_line(case: Case, sweep_root: Path) -> None:
    work = sweep_root.parent.parent  # the working directory (the sweep_root fixture's tmp_path)
    args = list(case.args)
    if case.on_existing_sweep:
        (work / "existing.yaml").write_text(OK_SWEEP)
        created = CliRunner().invoke(main, ["--sweep", "existing.yaml", "--dry-run", "--local"])
        assert created.exit_code == 0, created.output
        (sweep_id,) = (p.name for p in sweep_root.iterdir())
        args = [arg.replace("{sweep}", sweep_id) for arg in args]
    for name, content in case.files.items():
        path = work / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    before = files_under(sweep_root)

    result = CliRunner().invoke(main, args)

    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert result.exit_code == case.exit_code, result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(error_lines) == 1, result.output
    assert case.message in result.output, result.output
    assert files_under(sweep_root) == before
