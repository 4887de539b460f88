"""Batches of token sequences, (batch, max_seq_len), from a `datasets` dataset.

Documents are tokenized, each followed by the tokenizer's EOS token, concatenated and cut into
sequences of max_seq_len tokens (already-tokenized data is concatenated as it is).

Both samplers are reproducible from the generator alone, the only data state a checkpoint holds:
- a loaded dataset is cut into its sequences once, and each batch draws sequence indices from
  the generator;
- a streamed dataset is read in order (shuffled through a buffer with the dataset's seed). Its
  read position is kept in the generator's seed: each batch reseeds the generator with the
  position after it, so a generator restored from a checkpoint resumes the stream exactly where
  the run stopped, and a freshly seeded generator (evaluation) starts at the beginning.

With several data-parallel ranks a stream is split between them (`StreamSampler.shard`, through
`datasets.distributed.split_dataset_by_node`): each rank reads and tokenizes only its own
documents, and its generator holds its own position in its share.
"""

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import pyarrow.compute as pc
import torch
from datasets.distributed import split_dataset_by_node
from torch import Tensor

from spd.experiments.lm.task_config import LMDatasetConfig

TOKEN_COLUMN = "input_ids"
Tokenize = Callable[[list[Any]], list[list[int]]]
"""A list of column values (texts, or token lists) -> the token ids of each, EOS appended."""


class DatasetUnavailableError(RuntimeError):
    """A dataset that cannot be loaded here, with what to do instead."""


def make_tokenize(tokenizer: Any | None, is_tokenized: bool) -> Tokenize:
    if is_tokenized:
        return lambda values: [list(ids) for ids in values]
    if tokenizer is None:
        raise ValueError("a dataset that is not tokenized needs a tokenizer")
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]

    def tokenize(texts: list[Any]) -> list[list[int]]:
        return [ids + eos for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    return tokenize


def load_split(config: LMDatasetConfig, split: str) -> Any:
    """The split as a `datasets.Dataset`, or an `IterableDataset` when streaming."""
    try:
        return datasets.load_dataset(
            config.path,
            config.name,
            data_files=config.data_files,
            revision=config.revision,
            split=split,
            streaming=config.streaming,
        )
    except ConnectionError as e:
        raise DatasetUnavailableError(
            f"dataset {config.path!r} is not available offline ({e}). Copy its data files to this "
            "machine and point task_config.dataset at them: path: text (or json) with data_files, "
            "or path: the local directory that holds them"
        ) from e


def check_vocab(batch: Tensor, vocab_size: int) -> None:
    if int(batch.max()) >= vocab_size:
        raise ValueError(
            f"token id {int(batch.max())} is outside the model's vocabulary ({vocab_size}); "
            "the dataset was tokenized with another tokenizer than the model's"
        )


class SequenceSampler:
    """Uniformly random sequences, with replacement, of a dataset cut into sequences once."""

    def __init__(self, dataset: Any, tokenize: Tokenize, column: str, max_seq_len: int,
                 vocab_size: int, device: torch.device):
        tokens = packed_tokens(dataset, tokenize, column)
        n_sequences = len(tokens) // max_seq_len
        if n_sequences == 0:
            raise ValueError(f"the split has {len(tokens)} tokens, fewer than max_seq_len {max_seq_len}")
        self.sequences = tokens[: n_sequences * max_seq_len].view(n_sequences, max_seq_len)
        check_vocab(self.sequences, vocab_size)
        self.device = device

    def __call__(self, batch_size: int, generator: torch.Generator) -> Tensor:
        index = torch.randint(len(self.sequences), (batch_size,), generator=generator,
                              device=generator.device)
        return self.sequences[index.cpu()].to(self.device, torch.int64)


def packed_tokens(dataset: Any, tokenize: Tokenize, column: str) -> Tensor:
    """Every document's tokens, concatenated, as one int32 tensor (tokenizing is cached by
    `datasets` with the dataset, so a second run skips it)."""
    if column not in dataset.column_names:
        raise ValueError(f"dataset has no column {column!r}; its columns: {dataset.column_names}")
    tokenized = dataset.map(
        lambda batch: {TOKEN_COLUMN: tokenize(batch[column])},
        batched=True,
        remove_columns=dataset.column_names,
        desc="tokenize",
    )
    flat = pc.list_flatten(tokenized.data.column(TOKEN_COLUMN))
    return torch.from_numpy(np.array(flat.to_numpy(), dtype=np.int32))  # a writable copy


@dataclass(frozen=True)
class StreamPosition:
    """Where a stream is: the pass over the data and the documents read in that pass."""

    epoch: int
    documents: int

    SEED_BASE = 1 << 62
    """Seeds from here on encode a position; any smaller seed is the start of the stream."""
    EPOCH_STRIDE = 1 << 40

    @classmethod
    def of(cls, generator: torch.Generator) -> "StreamPosition":
        code = generator.initial_seed() - cls.SEED_BASE
        return cls(*divmod(code, cls.EPOCH_STRIDE)) if code >= 0 else cls(0, 0)

    def store_in(self, generator: torch.Generator) -> None:
        generator.manual_seed(self.SEED_BASE + self.epoch * self.EPOCH_STRIDE + self.documents)


class StreamSampler:
    """Consecutive sequences of a streamed dataset; see the module docstring for resuming."""

    MAX_OPEN_READERS = 4
    """Readers kept open by position: training and evaluation each continue their own."""

    def __init__(self, dataset: Any, tokenize: Tokenize, config: LMDatasetConfig,
                 max_seq_len: int, vocab_size: int, device: torch.device,
                 rank: int = 0, world_size: int = 1):
        self.dataset, self.tokenize, self.config = dataset, tokenize, config
        self.max_seq_len, self.vocab_size, self.device = max_seq_len, vocab_size, device
        self.rank, self.world_size = rank, world_size
        self.readers: dict[StreamPosition, Iterator[dict[str, Any]]] = {}

    def shard(self, rank: int, world_size: int) -> "StreamSampler":
        """A sampler of rank `rank`'s share of the stream: every rank shuffles the stream alike,
        then keeps its own shards of the files (or every world_size-th document)."""
        return StreamSampler(self.dataset, self.tokenize, self.config, self.max_seq_len,
                             self.vocab_size, self.device, rank, world_size)

    def open(self, position: StreamPosition) -> Iterator[dict[str, Any]]:
        seed = int(np.random.SeedSequence([self.config.seed, position.epoch]).generate_state(1)[0])
        stream = self.dataset.shuffle(seed=seed, buffer_size=self.config.shuffle_buffer)
        if self.world_size > 1:
            stream = split_dataset_by_node(stream, rank=self.rank, world_size=self.world_size)
        # Not stream.skip(): `datasets` applies a skip before the split between ranks, whereas
        # the position counts this rank's documents.
        return itertools.islice(iter(stream), position.documents, None)

    def __call__(self, batch_size: int, generator: torch.Generator) -> Tensor:
        position = StreamPosition.of(generator)
        reader = self.readers.pop(position, None) or self.open(position)
        n_tokens = batch_size * self.max_seq_len
        tokens: list[int] = []
        while len(tokens) < n_tokens:
            document = next(reader, None)
            if document is None:
                if position.documents == 0:
                    raise ValueError("the streamed split has no documents")
                position = StreamPosition(position.epoch + 1, 0)
                reader = self.open(position)
                continue
            if self.config.column not in document:
                raise ValueError(f"dataset has no column {self.config.column!r}; its columns: "
                                 f"{sorted(document)}")
            tokens.extend(self.tokenize([document[self.config.column]])[0])
            position = StreamPosition(position.epoch, position.documents + 1)
        self.readers[position] = reader
        while len(self.readers) > self.MAX_OPEN_READERS:
            self.readers.pop(next(iter(self.readers)))
        position.store_in(generator)
        batch = torch.tensor(tokens[:n_tokens], dtype=torch.int64).view(batch_size, self.max_seq_len)
        check_vocab(batch, self.vocab_size)
        return batch.to(self.device)


def make_sampler(config: LMDatasetConfig, split: str, tokenizer: Any | None, max_seq_len: int,
                 vocab_size: int, device: torch.device) -> SequenceSampler | StreamSampler:
    dataset = load_split(config, split)
    tokenize = make_tokenize(tokenizer, config.is_tokenized)
    if config.streaming:
        return StreamSampler(dataset, tokenize, config, max_seq_len, vocab_size, device)
    return SequenceSampler(dataset, tokenize, config.column, max_seq_len, vocab_size, device)
