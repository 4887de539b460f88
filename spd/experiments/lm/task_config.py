"""Config of the language-model task: which causal LM to decompose and which text to run it on.

The model is either a Hugging Face model (`model`: a hub name or a local `save_pretrained`
directory) or a tiny model that SPD builds and trains itself on a generated corpus (`target`),
which needs no download at all.
"""

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from spd.strict_model import StrictModel

DataFiles = str | list[str] | dict[str, str | list[str]]


class LMDatasetConfig(StrictModel):
    """Arguments of `datasets.load_dataset(path, name, data_files=..., revision=..., streaming=...)`.

    Documents are tokenized (unless `is_tokenized`), joined with the tokenizer's EOS token and cut
    into sequences of `max_seq_len` tokens.
    """

    path: str = Field(description="A hub dataset, a local dataset directory, or a builder: text, json.")
    name: str | None = Field(None, description="The dataset's subset (configuration) name.")
    data_files: DataFiles | None = Field(None, description="Local or remote files for a builder.")
    revision: str | None = None
    streaming: bool = Field(False, description="Read the data as a stream instead of loading it whole.")
    column: str = Field("text", description="The column with the text (or token ids).")
    is_tokenized: bool = Field(False, description="The column already holds lists of token ids.")
    train_split: str = "train"
    eval_split: str | None = Field(None, description="Split for evaluation; None uses train_split.")
    shuffle_buffer: PositiveInt = Field(1000, description="Examples in the streaming shuffle buffer.")
    seed: int = Field(0, description="Shuffle seed of a streamed dataset.")

    @model_validator(mode="after")
    def _builders_need_files(self) -> "LMDatasetConfig":
        if self.path in ("text", "json", "csv", "parquet") and self.data_files is None:
            raise ValueError(f"dataset path {self.path!r} is a builder: give it data_files")
        return self


class TinyCorpusConfig(StrictModel):
    """The generated corpus of templated simple sentences (spd.experiments.lm.tiny_corpus)."""

    n_train_documents: PositiveInt = 4000
    n_eval_documents: PositiveInt = 400
    seed: int = 0


class TinyLMTargetConfig(StrictModel):
    """A tiny causal LM built from scratch and trained on the tiny corpus; its hash names the
    cached weights."""

    architecture: Literal["llama", "gpt2"] = "llama"
    d_model: PositiveInt = 48
    n_layers: PositiveInt = 2
    n_heads: PositiveInt = 4
    d_mlp: PositiveInt = 96
    context_length: PositiveInt = 64
    corpus: TinyCorpusConfig = TinyCorpusConfig()
    train_steps: PositiveInt = 800
    train_batch_size: PositiveInt = 32
    train_lr: float = Field(3e-3, gt=0)
    train_weight_decay: float = Field(0.01, ge=0)
    train_seed: int = 0

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "TinyLMTargetConfig":
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        return self


class LMTaskConfig(StrictModel):
    task_name: Literal["lm"] = "lm"
    model: str | None = Field(
        None, description="Hub name or local save_pretrained directory of a causal LM."
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of model.")
    tokenizer: str | None = Field(None, description="Hub name or directory; None uses model's.")
    dtype: Literal["float32", "bfloat16"] = "float32"
    target: TinyLMTargetConfig | None = Field(
        None, description="Build and train a tiny LM locally (cached) instead of loading `model`."
    )
    dataset: LMDatasetConfig | None = Field(
        None, description="The text to decompose on; None with `target` uses the tiny corpus."
    )
    max_seq_len: PositiveInt

    @model_validator(mode="after")
    def _one_model_source(self) -> "LMTaskConfig":
        if (self.model is None) == (self.target is None):
            raise ValueError("give exactly one of task_config.model (a hub name or directory) "
                             "and task_config.target (a tiny model trained locally)")
        if self.model is None and (self.revision or self.tokenizer):
            raise ValueError("revision and tokenizer apply to task_config.model only")
        if self.model is not None and self.dataset is None:
            raise ValueError("task_config.dataset is required with task_config.model")
        if self.target is not None and self.max_seq_len > self.target.context_length:
            raise ValueError(f"max_seq_len {self.max_seq_len} exceeds the tiny target's "
                             f"context_length {self.target.context_length}")
        return self
