"""The lm task config, loading targets (local, offline hub names, the tiny trained target), and
the LM eval metrics."""

import datasets
import pytest
import torch
from huggingface_hub import constants as hub_constants

from spd.component_model import ComponentModel
from spd.config import Config
from spd.config_loading import load_config
from spd.experiments.lm import target as lm_target
from spd.experiments.lm import tiny_model
from spd.experiments.lm.data import DatasetUnavailableError, load_split
from spd.experiments.lm.metrics import lm_eval_metrics, next_token_ce
from spd.experiments.lm.pretrained import ModelUnavailableError
from spd.experiments.lm.task import build_lm_task
from spd.experiments.lm.task_config import (
    LMDatasetConfig,
    LMTaskConfig,
    TinyCorpusConfig,
    TinyLMTargetConfig,
)
from spd.experiments.lm.tiny_corpus import write_tiny_corpus
from spd.module_patterns import resolve_module_patterns

CPU = torch.device("cpu")
LOCAL_TEXT = LMDatasetConfig(path="text", data_files="corpus.txt")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "exactly one of"),
        ({"model": "gpt2", "target": {}, "dataset": LOCAL_TEXT}, "exactly one of"),
        ({"model": "gpt2"}, "dataset is required"),
        ({"target": {}, "revision": "main"}, "apply to task_config.model only"),
        ({"target": {"context_length": 8}}, "exceeds the tiny target's context_length"),
    ],
)
def test_task_config_rejects_inconsistent_sources(fields, message):
    with pytest.raises(ValueError, match=message):
        LMTaskConfig(max_seq_len=16, **fields)


def test_builder_datasets_need_files():
    with pytest.raises(ValueError, match="give it data_files"):
        LMDatasetConfig(path="json")


def test_lm_runs_require_kl_output_loss(lm_config):
    with pytest.raises(ValueError, match="output_loss_type: kl"):
        Config.model_validate(lm_config("llama", [["model.layers.*.mlp.*", 4]], output_loss_type="mse"))


def test_bfloat16_targets_require_autocast(lm_config):
    config = lm_config("llama", [["model.layers.*.mlp.*", 4]])
    config["task_config"]["dtype"] = "bfloat16"
    with pytest.raises(ValueError, match="needs autocast_bf16: true"):
        Config.model_validate(config)
    assert Config.model_validate(config | {"autocast_bf16": True}).task_config.dtype == "bfloat16"


def test_offline_hub_model_fails_fast_with_instructions(monkeypatch):
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    task_config = LMTaskConfig(model="spd-tests/no-such-model", dataset=LOCAL_TEXT, max_seq_len=8)
    with pytest.raises(ModelUnavailableError, match=r"save_pretrained\(DIR\)"):
        build_lm_task(task_config, None, CPU, progress=False)


def test_offline_hub_dataset_fails_with_instructions(monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DatasetUnavailableError, match="data_files"):
        load_split(LMDatasetConfig(path="spd-tests/no-such-dataset"), "train")


def test_local_model_directory_builds_a_task(saved_models, corpus_files):
    dataset = LMDatasetConfig(
        path="text", data_files={k: str(v) for k, v in corpus_files.items()}, eval_split="validation"
    )
    task = build_lm_task(
        LMTaskConfig(model=str(saved_models["llama"]), dataset=dataset, max_seq_len=16),
        None,
        CPU,
        progress=False,
    )
    assert task.output_attr == "logits" and task.positions_per_input == 16
    assert not task.target.training and not any(p.requires_grad for p in task.target.parameters())
    generator = torch.Generator().manual_seed(0)
    train, held_out = task.sample_batch(4, generator), task.sample_eval_batch(4, generator)
    assert train.shape == held_out.shape == (4, 16)
    assert task.target(train).logits.shape == (4, 16, task.target.config.vocab_size)


def tiny_task_config(train_steps: int) -> LMTaskConfig:
    target = TinyLMTargetConfig(
        d_model=16, n_layers=1, n_heads=2, d_mlp=32, context_length=16, train_steps=train_steps,
        corpus=TinyCorpusConfig(n_train_documents=300, n_eval_documents=30),
    )
    return LMTaskConfig(target=target, max_seq_len=16)


def test_tiny_target_trains_once_and_then_comes_from_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SPD_CACHE_DIR", str(tmp_path))
    untrained = build_lm_task(tiny_task_config(train_steps=1), None, CPU, progress=False)
    trained = build_lm_task(tiny_task_config(train_steps=150), None, CPU, progress=False)
    batch = trained.sample_eval_batch(16, torch.Generator().manual_seed(0))
    with torch.no_grad():
        ce_untrained = next_token_ce(untrained.target(batch).logits, batch)
        ce_trained = next_token_ce(trained.target(batch).logits, batch)
    assert ce_trained < ce_untrained - 1.0

    monkeypatch.setattr(lm_target, "train_tiny_lm", lambda *a, **k: pytest.fail("trained again"))
    cached = build_lm_task(tiny_task_config(train_steps=150), None, CPU, progress=False)
    with torch.no_grad():
        torch.testing.assert_close(cached.target(batch).logits, trained.target(batch).logits)


def test_tiny_corpus_is_deterministic_and_covered_by_its_tokenizer(monkeypatch, tmp_path):
    config = TinyCorpusConfig(n_train_documents=50, n_eval_documents=10)
    monkeypatch.setenv("SPD_CACHE_DIR", str(tmp_path / "a"))
    first = {split: path.read_text() for split, path in write_tiny_corpus(config).items()}
    monkeypatch.setenv("SPD_CACHE_DIR", str(tmp_path / "b"))
    files = write_tiny_corpus(config)
    assert {split: path.read_text() for split, path in files.items()} == first
    assert first["train"] != first["validation"]
    tokenizer = tiny_model.train_word_tokenizer(files["train"])
    assert tokenizer.unk_token_id not in tokenizer(first["train"])["input_ids"]


@pytest.mark.parametrize("experiment", ["tiny_lm_local", "ss_llama", "gpt2"])
def test_lm_experiment_configs_load(experiment):
    config = load_config(experiment)
    assert config.task_config.task_name == "lm" and config.output_loss_type == "kl"
    assert (config.task_config.target is None) == (experiment != "tiny_lm_local")


def exact_component_model(target: torch.nn.Module, patterns: list[tuple[str, int]]) -> ComponentModel:
    """Components with V = I and U = Wᵀ: with every mask 1 they are exactly the target."""
    resolved = resolve_module_patterns(target, patterns)
    module_to_c = {path: target.get_submodule(path).weight.shape[1] for path in resolved}
    model = ComponentModel(target, module_to_c, "mlp", [4], "leaky_hard", False, "logits")
    for path in model.module_paths:
        components = model.components_of(path)
        weight = target.get_submodule(path).weight.detach()
        components.V.data = torch.eye(weight.shape[1])
        components.U.data = weight.T.clone()
    return model


def test_eval_metrics_of_exact_components(saved_models, lm_config):
    from transformers import AutoModelForCausalLM

    target = AutoModelForCausalLM.from_pretrained(saved_models["llama"]).eval().requires_grad_(False)
    torch.manual_seed(0)
    for param in target.parameters():  # an untrained model's outputs barely depend on its MLPs
        param.normal_(std=0.5)
    model = exact_component_model(target, [("model.layers.*.mlp.*", 1)])
    config = Config.model_validate(lm_config("llama", [["model.layers.*.mlp.*", 4]]))
    batch = torch.randint(0, 50, (3, 10), generator=torch.Generator().manual_seed(0))
    target_out, inputs = model.forward_caching_inputs(batch)
    ci = model.causal_importances(inputs)
    metrics = lm_eval_metrics(model, batch, target_out, ci, config, torch.Generator().manual_seed(1))

    assert set(metrics) == {
        *(f"kl/{v}" for v in ("ci_masked", "stochastic_masked", "unmasked", "zero_masked")),
        *(f"ce/{v}" for v in ("target", "ci_masked", "stochastic_masked", "unmasked", "zero_masked")),
        *(f"ce_unrecovered/{v}" for v in ("ci_masked", "stochastic_masked", "unmasked")),
    }
    assert metrics["ce/target"] == pytest.approx(float(next_token_ce(target_out, batch)))
    assert metrics["ce/unmasked"] == pytest.approx(float(metrics["ce/target"]), abs=1e-5)
    assert abs(float(metrics["kl/unmasked"])) < 1e-6
    assert abs(float(metrics["ce_unrecovered/unmasked"])) < 1e-3
    assert metrics["kl/zero_masked"] > 1e-4
    zero_gap = metrics["ce/zero_masked"] - metrics["ce/target"]
    ci_gap = metrics["ce/ci_masked"] - metrics["ce/target"]
    assert metrics["ce_unrecovered/ci_masked"] == pytest.approx(float(ci_gap / zero_gap))
