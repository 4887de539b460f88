"""Bad inputs to spd-decompose and spd-train-target: each one stops with exit code 2 and a clear
message (no traceback), before anything is written: the directory the commands run in, run
directories and all, is byte-for-byte what it was. Only validation runs; nothing trains."""

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from spd.cli import main, train_target_main
from spd.config_fingerprint import fingerprint_of
from spd.config_loading import load_config
from spd.registry import EXPERIMENTS
from tests.conftest import tms_config_dict

Setup = Callable[[Path], None]
"""Prepares files in the working directory (tmp_path) before the command runs."""


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]
    message: str
    setup: Setup | None = None
    commands: tuple[str, ...] = ("decompose", "train-target")
    env: dict[str, str] = field(default_factory=dict)


def write(name: str, content: bytes | str) -> Setup:
    def setup(cwd: Path) -> None:
        data = content.encode() if isinstance(content, str) else content
        (cwd / name).write_bytes(data)

    return setup


def tms_file(**overrides: object) -> Setup:
    return write("c.yaml", yaml.safe_dump(tms_config_dict(**overrides)))


def tiny_lm_model_dir(cwd: Path) -> None:
    """A local Hugging Face model directory with a config but no tokenizer files."""
    from transformers import LlamaConfig

    LlamaConfig(
        vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2,
    ).save_pretrained(cwd / "model")


def lm_file(task: dict[str, object], **overrides: object) -> Setup:
    raw = yaml.safe_load(EXPERIMENTS["tiny_lm_local"].config_path.read_text())
    raw["task_config"] = task
    return write("c.yaml", yaml.safe_dump(raw | overrides))


TEXT_DATASET = {"path": "text", "data_files": "corpus.txt"}

RUN = "runs/r"
"""The run directory of the run-directory cases."""


def existing_run(**changes: object) -> Setup:
    """A run directory of tms_5-2 with `changes` applied (fingerprint only: enough to refuse)."""

    def setup(cwd: Path) -> None:
        run = cwd / RUN
        run.mkdir(parents=True)
        overrides = [f"{key}={value}" for key, value in changes.items()]
        fingerprint = fingerprint_of(load_config("tms_5-2", overrides + ["device=cpu"]))
        (run / "fingerprint.json").write_text(fingerprint.model_dump_json())

    return setup


def old_run_without_fingerprint(cwd: Path) -> None:
    (cwd / RUN).mkdir(parents=True)
    (cwd / RUN / "config.yaml").write_text("steps: 3\n")


def run_with_checkpoint(content: bytes) -> Setup:
    def setup(cwd: Path) -> None:
        existing_run()(cwd)
        (cwd / RUN / "checkpoint.pt").write_bytes(content)

    return setup


class TouchOnLoad:
    """Unpickling this creates a file: a checkpoint that would run code when loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(self.marker),))


def code_running_checkpoint(cwd: Path) -> None:
    existing_run()(cwd)
    with open(cwd / RUN / "checkpoint.pt", "wb") as f:
        torch.save({"next_step": TouchOnLoad(str(cwd / "code-ran"))}, f, pickle_protocol=2)


def truncated_checkpoint(cwd: Path) -> None:
    existing_run()(cwd)
    torch.save({"next_step": 3, "model": {"w": torch.zeros(100)}}, cwd / "full.pt")
    data = (cwd / "full.pt").read_bytes()
    (cwd / "full.pt").unlink()
    (cwd / RUN / "checkpoint.pt").write_bytes(data[: len(data) // 2])


def other_target(cwd: Path) -> None:
    """A target state dict of tms_40-10, given to a tms_5-2 config."""
    from spd.experiment_tasks import build_target_skeleton

    skeleton = build_target_skeleton(load_config("tms_40-10"))
    torch.save({k: torch.zeros(v.shape) for k, v in skeleton.state_dict().items()}, cwd / "other.pt")


CPU = ["--set", "device=cpu"]
DECOMPOSE = ("decompose",)

CASES = [
    # --- where the config comes from
    Case("unknown experiment", ["tms_5-3"], "neither a config file nor an experiment"),
    Case("missing file", ["nope.yaml"], "neither a config file nor an experiment"),
    Case("directory as config", ["."], "is a directory"),
    Case("malformed YAML file", ["c.yaml"], "malformed YAML at line 2", write("c.yaml", "steps: 3\n  lr: [\n")),
    Case("non-UTF-8 file", ["c.yaml"], "is not UTF-8", write("c.yaml", b"steps: \xff\xfe\n")),
    Case("YAML list, not a mapping", ["c.yaml"], "does not hold a YAML mapping", write("c.yaml", "- 1\n- 2\n")),
    Case("empty file", ["c.yaml"], "does not hold a YAML mapping", write("c.yaml", "")),
    Case("key given twice in a file", ["c.yaml"], "the key 'lr' is given twice in one mapping (lines 1 and 2)", write("c.yaml", "lr: 0.1\nlr: 0.2\n")),
    # --- overrides
    Case("override without =", ["tms_5-2", "--set", "steps"], "not of the form key=value"),
    Case("override without key", ["tms_5-2", "--set", "=3"], "not of the form key=value"),
    Case("override with empty key part", ["tms_5-2", "--set", "losses..coeff=3"], "not of the form key=value"),
    Case("malformed YAML override", ["tms_5-2", "--set", "steps=[1,"], "malformed YAML"),
    Case("override below a scalar", ["tms_5-2", "--set", "steps.x=1"], "'steps' is not a mapping"),
    Case("unknown key", ["tms_5-2", "--set", "bach_size=3"], "bach_size: unknown key"),
    Case("unknown nested key", ["tms_5-2", "--set", "losses.faithfulness.cof=1"], "losses.faithfulness.cof: unknown key"),
    # --- values
    Case("zero steps", ["tms_5-2", "--set", "steps=0"], "steps: Input should be greater than 0"),
    Case("steps not a number", ["tms_5-2", "--set", "steps=many"], "steps: Input should be a valid integer"),
    Case("negative lr", ["tms_5-2", "--set", "lr=-1"], "lr: Input should be greater than 0"),
    Case("infinite lr", ["tms_5-2", "--set", "lr=.inf"], "lr: Input should be a finite number"),
    Case("nan coefficient", ["tms_5-2", "--set", "losses.importance_minimality.coeff=.nan"], "coeff: Input should be a finite number"),
    Case("zero batch size", ["tms_5-2", "--set", "batch_size=0"], "batch_size: Input should be greater than 0"),
    Case("unknown sigmoid", ["tms_5-2", "--set", "sigmoid_type=soft"], "sigmoid_type: Input should be"),
    Case("unknown CI function", ["tms_5-2", "--set", "ci_fn_type=transformer"], "ci_fn_type: Input should be"),
    Case("image_freq off the eval grid", ["tms_5-2", "--set", "image_freq=7"], "must be a multiple of eval_freq"),
    Case("step-0 figures without image_freq", ["tms_5-2", "--set", "image_freq=null", "--set", "image_on_first_step=true"], "image_on_first_step draws the image_freq figures"),
    Case("compile with compile_step", ["tms_5-2", "--set", "compile=true"], "drop compile"),
    Case("anneal window reversed", ["tms_5-2", "--set", "losses.importance_minimality.p_anneal_start_frac=0.9", "--set", "losses.importance_minimality.p_anneal_end_frac=0.1"], "p_anneal_end_frac must be >="),
    Case("unknown task", ["tms_5-2", "--set", "task_config.task_name=vision"], "task_config: Input tag 'vision'"),
    # --- devices
    Case("device that does not exist", ["tms_5-2", "--set", "device=tpu9"], "device: 'tpu9' is not a device"),
    Case("device not here", ["tms_5-2", "--set", "device=cuda:7"], "device: 'cuda:7' is not available here"),
    # --- module patterns, identities, tied pairs
    Case("C of zero", ["tms_5-2", "--set", "target_module_patterns=[[linear1, 0]]"], "C must be at least 1"),
    Case("pattern listed twice", ["tms_5-2", "--set", "target_module_patterns=[[linear1, 3], [linear1, 4]]"], "listed twice"),
    Case("global C with pairs", ["tms_5-2", "--set", "C=3"], "global C cannot be combined"),
    Case("plain patterns without C", ["tms_5-2", "--set", "target_module_patterns=[linear1]"], "plain patterns but no C"),
    Case("pattern that matches no module", ["tms_5-2", *CPU, "--set", "target_module_patterns=[[linear3, 4]]"], "target_module_patterns: pattern(s) ['linear3'] match no module; decomposable modules are: linear1, linear2"),
    Case("pattern that matches no decomposable module", ["tms_5-2", *CPU, "--set", "target_module_patterns=[[hidden_layers, 4]]"], "matches only 'hidden_layers', a ModuleList"),
    Case("pattern typo in a resid MLP", ["resid_mlp1", *CPU, "--set", "target_module_patterns=[[layers.*.mlp_inn, 4]]"], "match no module; decomposable modules are: layers.0.mlp_in"),
    Case("tied pair naming a missing module", ["tms_5-2", *CPU, "--set", "tied_components=[[linear1, linear9]]"], "tied_components: 'linear9' is not a decomposed module"),
    Case("identity pattern that matches nothing", ["tms_5-2-id", *CPU, "--set", "identity_module_patterns=[[linear7, 3]]"], "identity_module_patterns: identity pattern(s) ['linear7'] match no module"),
    Case("identity on a container", ["tms_5-2-id", *CPU, "--set", "identity_module_patterns=[[hidden*, 3]]"], "identities go before nn.Linear"),
    # --- files and code the config names
    Case("missing pretrained model", ["tms_5-2", *CPU, "--set", "pretrained_model_path=missing.pt"], "pretrained_model_path: missing.pt is not a file"),
    Case("pretrained model that is not a torch file", ["tms_5-2", *CPU, "--set", "pretrained_model_path=junk.pt"], "pretrained_model_path: junk.pt cannot be read", write("junk.pt", "junk")),
    Case("pretrained model of another experiment", ["tms_5-2", *CPU, "--set", "pretrained_model_path=other.pt"], "other.pt is not a target of this task_config (it differs in linear1.weight", other_target),
    Case("user metric that does not import", ["tms_5-2", *CPU, "--set", "user_metrics=[no_such_package.metrics:f]"], "user_metrics[0]: cannot import 'no_such_package.metrics'"),
    Case("user metric without a function name", ["tms_5-2", *CPU, "--set", "user_metrics=[tests.spd.user_hooks_example]"], "is not of the form 'module:function'"),
    Case("user figure that does not exist", ["tms_5-2", *CPU, "--set", "user_figures=[tests.spd.user_hooks_example:nope]"], "user_figures[0]: module 'tests.spd.user_hooks_example' has no function 'nope'"),
    # --- language models
    Case("lm model path that does not exist", ["c.yaml", *CPU], "model './no-model' is not a directory", lm_file({"task_name": "lm", "model": "./no-model", "dataset": TEXT_DATASET, "max_seq_len": 8})),
    Case("lm model directory without a tokenizer", ["c.yaml", *CPU], "set task_config.tokenizer=DIR", lambda cwd: (tiny_lm_model_dir(cwd), lm_file({"task_name": "lm", "model": "model", "dataset": TEXT_DATASET, "max_seq_len": 8})(cwd))),
    Case("lm hub model offline", ["gpt2", *CPU], "HF_HUB_OFFLINE=1 forbids downloading it", env={"HF_HUB_OFFLINE": "1"}),
    Case("lm with an mse loss", ["tiny_lm_local", "--set", "output_loss_type=mse"], "set output_loss_type: kl"),
    Case("lm sequences longer than the context", ["tiny_lm_local", "--set", "task_config.max_seq_len=100"], "exceeds the tiny target's context_length"),
    Case("lm pattern typo", ["tiny_lm_local", *CPU, "--set", "target_module_patterns=[[model.layers.*.mlp.up, 4]]"], "match no module; decomposable modules are: model.embed_tokens"),
    # --- the run directory (spd-decompose only)
    Case("--out is a file", ["tms_5-2", *CPU, "--out", "afile"], "--out afile is a file", write("afile", "x"), DECOMPOSE),
    Case("run directory of another config", ["tms_5-2", *CPU, "--set", "steps=300", "--out", RUN], "holds a run of another config (seed: 5 -> 0; steps: 5000 -> 300)", existing_run(seed=5), DECOMPOSE),
    Case("run directory of an older spd", ["tms_5-2", *CPU, "--out", RUN], "holds a run without a fingerprint.json", old_run_without_fingerprint, DECOMPOSE),
    Case("truncated checkpoint", ["tms_5-2", *CPU, "--out", RUN], "runs/r/checkpoint.pt cannot be read", truncated_checkpoint, DECOMPOSE),
    Case("checkpoint that is not a torch file", ["tms_5-2", *CPU, "--out", RUN], "start over with --no-resume", run_with_checkpoint(b"not a checkpoint"), DECOMPOSE),
    Case("checkpoint whose loading would run code", ["tms_5-2", *CPU, "--out", RUN], "cannot be read (UnpicklingError", code_running_checkpoint, DECOMPOSE),
]
"""Fragments are matched against the output with whitespace folded."""

COMMANDS = {"decompose": main, "train-target": train_target_main}
PARAMS = [
    pytest.param(command, case, id=f"{command}: {case.name}")
    for case in CASES
    for command in case.commands
]


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize(("command", "case"), PARAMS)
def test_bad_input_is_one_clear_error_and_writes_nothing(
    command: str, case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPD_RUNS_DIR", str(tmp_path / "runs"))
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    if case.setup is not None:
        case.setup(tmp_path)
    before = tree(tmp_path)
    result = CliRunner().invoke(COMMANDS[command], case.args)
    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), "a traceback, not a message"
    assert case.message in output
    assert tree(tmp_path) == before, "the command wrote or changed files"
    assert not (tmp_path / "code-ran").exists()


def test_case_table_is_large_and_every_case_distinct() -> None:
    assert len(PARAMS) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


def test_installed_command_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    env = os.environ | {"SPD_RUNS_DIR": str(tmp_path / "runs")}
    result = subprocess.run(
        [Path(sys.executable).parent / "spd-decompose", "tms_5-2", "--set", "device=tpu9"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    expected = (
        "Error: device: 'tpu9' is not a device; use one of auto, cpu, cuda, mps (optionally "
        "with an index, e.g. cuda:1)"
    )
    assert result.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "runs").exists()


def test_debug_shows_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["tms_5-3", "--debug"])
    assert result.exit_code == 1
    assert "neither a config file nor an experiment" in str(result.exception)
