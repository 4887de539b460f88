"""Token batches from local datasets: packing, reproducibility and resuming from the generator."""

import json

import pytest
import torch

from spd.experiments.lm.data import SequenceSampler, StreamPosition, StreamSampler, make_sampler
from spd.experiments.lm.task_config import LMDatasetConfig


def text_dataset(corpus_files, **overrides) -> LMDatasetConfig:
    files = {split: str(path) for split, path in corpus_files.items()}
    return LMDatasetConfig(path="text", data_files=files, eval_split="validation", **overrides)


def packed_corpus(corpus_files, tokenizer, split="train") -> list[int]:
    ids = []
    for line in corpus_files[split].read_text().splitlines():
        ids += tokenizer(line, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return ids


def test_loaded_dataset_is_cut_into_packed_sequences(corpus_files, tokenizer):
    sampler = make_sampler(text_dataset(corpus_files), "train", tokenizer, 16, len(tokenizer),
                           torch.device("cpu"))
    assert isinstance(sampler, SequenceSampler)
    packed = packed_corpus(corpus_files, tokenizer)
    assert sampler.sequences.flatten().tolist() == packed[: len(sampler.sequences) * 16]
    batch = sampler(5, torch.Generator().manual_seed(0))
    assert batch.shape == (5, 16) and batch.dtype == torch.int64
    rows = {tuple(row) for row in sampler.sequences.tolist()}
    assert all(tuple(row) in rows for row in batch.tolist())
    again = sampler(5, torch.Generator().manual_seed(0))
    assert torch.equal(batch, again)


def test_pretokenized_json_dataset_is_concatenated_as_is(tmp_path):
    documents = [list(range(1, 8)), list(range(10, 15)), list(range(20, 30))]
    path = tmp_path / "tokens.jsonl"
    path.write_text("".join(json.dumps({"input_ids": ids}) + "\n" for ids in documents))
    config = LMDatasetConfig(path="json", data_files=str(path), column="input_ids", is_tokenized=True)
    sampler = make_sampler(config, "train", None, 4, 64, torch.device("cpu"))
    flat = [i for ids in documents for i in ids]
    assert sampler.sequences.tolist() == [flat[i : i + 4] for i in range(0, 20, 4)]


def test_token_ids_beyond_the_vocabulary_are_rejected(corpus_files, tokenizer):
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        make_sampler(text_dataset(corpus_files), "train", tokenizer, 16, 5, torch.device("cpu"))


def test_missing_column_is_named(corpus_files, tokenizer):
    with pytest.raises(ValueError, match="no column 'story'"):
        make_sampler(text_dataset(corpus_files, column="story"), "train", tokenizer, 16,
                     len(tokenizer), torch.device("cpu"))


def test_stream_position_survives_a_generator_checkpoint():
    generator = torch.Generator().manual_seed(3)
    assert StreamPosition.of(generator) == StreamPosition(0, 0)
    StreamPosition(2, 12345).store_in(generator)
    restored = torch.Generator()
    restored.set_state(generator.get_state())
    assert StreamPosition.of(restored) == StreamPosition(2, 12345)


def streaming_sampler(corpus_files, tokenizer, **overrides) -> StreamSampler:
    config = text_dataset(corpus_files, streaming=True, **overrides)
    sampler = make_sampler(config, "validation", tokenizer, 16, len(tokenizer), torch.device("cpu"))
    assert isinstance(sampler, StreamSampler)
    return sampler


def test_stream_resumes_from_a_restored_generator_across_epochs(corpus_files, tokenizer):
    # A batch of 8 x 16 tokens reads about 4 of the 40 documents: 24 batches wrap the stream twice.
    sampler = streaming_sampler(corpus_files, tokenizer, shuffle_buffer=8)
    generator = torch.Generator().manual_seed(0)
    batches, states = [], []
    for _ in range(24):
        states.append(generator.get_state())
        batches.append(sampler(8, generator))
    assert StreamPosition.of(generator).epoch >= 2
    assert not torch.equal(batches[0], batches[1])

    fresh = streaming_sampler(corpus_files, tokenizer, shuffle_buffer=8)
    for start in (0, 7, 15, 21):
        resumed = torch.Generator()
        resumed.set_state(states[start])
        for expected in batches[start : start + 3]:
            assert torch.equal(fresh(8, resumed), expected)


def test_stream_without_shuffling_reads_the_documents_in_order(corpus_files, tokenizer):
    sampler = streaming_sampler(corpus_files, tokenizer, shuffle_buffer=1)
    batch = sampler(2, torch.Generator().manual_seed(0))
    assert batch.flatten().tolist() == packed_corpus(corpus_files, tokenizer, "validation")[:32]


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_read_disjoint_shares_of_the_stream_that_cover_it(corpus_files, tokenizer, world_size):
    sampler = streaming_sampler(corpus_files, tokenizer, shuffle_buffer=8)
    start = StreamPosition(0, 0)
    whole = [document["text"] for document in sampler.open(start)]
    shares = [
        [document["text"] for document in sampler.shard(rank, world_size).open(start)]
        for rank in range(world_size)
    ]
    assert all(shares), [len(share) for share in shares]
    assert sorted(text for share in shares for text in share) == sorted(whole)
    # Every rank shuffles alike: a rank's share keeps the whole stream's order.
    for share in shares:
        assert share == [text for text in whole if text in set(share)]


def test_a_rank_resumes_its_share_of_the_stream_from_its_generator(corpus_files, tokenizer):
    share = streaming_sampler(corpus_files, tokenizer, shuffle_buffer=8).shard(1, 2)
    generator = torch.Generator().manual_seed(0)
    batches, states = [], []
    for _ in range(8):
        states.append(generator.get_state())
        batches.append(share(4, generator))
    fresh = streaming_sampler(corpus_files, tokenizer, shuffle_buffer=8).shard(1, 2)
    resumed = torch.Generator()
    resumed.set_state(states[5])
    assert all(torch.equal(fresh(4, resumed), expected) for expected in batches[5:])
