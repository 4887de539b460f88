"""A generated corpus of tiny stories for the offline `tiny_lm_local` experiment.

Each document is a short story of templated sentences about one child, one animal, one thing and
one place. The story repeats its characters, so a small model learns both the grammar (articles,
plurals, pronouns) and to copy names from earlier in its context. One document per line, lower
case, punctuation as separate words: a whitespace word-level tokenizer covers it exactly.
"""

import random
from pathlib import Path

from spd.atomic_io import atomic_write_text
from spd.experiments.lm.task_config import TinyCorpusConfig
from spd.target_cache import cached_target_dir

GIRLS = ["mia", "lily", "anna", "zoe", "emma", "nora"]
BOYS = ["tom", "sam", "ben", "max", "leo", "finn"]
ANIMALS = ["cat", "dog", "bird", "frog", "duck", "horse", "rabbit", "fox"]
THINGS = ["ball", "box", "cup", "hat", "book", "kite", "apple", "drum", "boat", "key"]
ADJECTIVES = ["red", "blue", "green", "yellow", "small", "big", "old", "new"]
PLACES = ["park", "garden", "house", "river", "school", "forest", "beach", "farm"]
VERBS = ["found", "saw", "took", "lost", "liked", "painted", "dropped", "carried"]
FEELINGS = ["happy", "sad", "tired", "hungry", "excited", "proud"]
NUMBERS = ["two", "three", "four", "five"]

SPLIT_FILES = {"train": "train.txt", "validation": "validation.txt"}


def story(rng: random.Random) -> str:
    girl = rng.random() < 0.5
    name = rng.choice(GIRLS if girl else BOYS)
    friend = rng.choice([n for n in GIRLS + BOYS if n != name])
    pronoun, possessive = ("she", "her") if girl else ("he", "his")
    animal, thing, place = rng.choice(ANIMALS), rng.choice(THINGS), rng.choice(PLACES)
    adjective, verb, feeling = rng.choice(ADJECTIVES), rng.choice(VERBS), rng.choice(FEELINGS)
    middle = [
        f"{name} saw a {adjective} {animal} .",
        f"the {animal} had a {thing} .",
        f"{name} {verb} the {thing} .",
        f"{pronoun} was very {feeling} .",
        f"{name} gave the {thing} to {friend} .",
        f"{friend} and {name} played with the {animal} .",
        f"{name} has {rng.choice(NUMBERS)} {thing}s and one {animal} .",
        f"{possessive} {animal} likes the {place} .",
    ]
    rng.shuffle(middle)
    sentences = [f"one day {name} went to the {place} .", *middle[: rng.randint(2, 5)]]
    sentences.append(f"at the end , {name} went home with the {animal} .")
    return " ".join(sentences)


def generate_documents(n_documents: int, rng: random.Random) -> list[str]:
    return [story(rng) for _ in range(n_documents)]


def write_tiny_corpus(config: TinyCorpusConfig) -> dict[str, Path]:
    """The corpus files ({split: path}) in the cache, written once per config; deterministic."""
    directory = cached_target_dir("lm_corpus", config)
    rng = random.Random(config.seed)
    sizes = {"train": config.n_train_documents, "validation": config.n_eval_documents}
    paths = {split: directory / name for split, name in SPLIT_FILES.items()}
    if all(path.exists() for path in paths.values()):
        return paths
    for split, path in paths.items():  # train first: the validation split continues the rng
        atomic_write_text(path, "\n".join(generate_documents(sizes[split], rng)) + "\n")
    return paths
