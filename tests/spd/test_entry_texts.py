"""Memoized entry texts (spd.entry_texts): values that Python finds equal but that are written
differently never share a text."""

from typing import Any

from spd.entry_texts import EntryTexts


def test_values_equal_in_python_but_written_differently_keep_their_own_texts() -> None:
    texts = EntryTexts(lambda key, value: f"{key}: {value!r}")
    values: list[Any] = [1, 1.0, True, "1", 0.0, -0.0, [1], {"a": 1, "b": 2}, {"b": 2, "a": 1}]
    expected = [f"v: {value!r}" for value in values]
    assert texts(("v", value) for value in values) == expected
    assert texts(("v", value) for value in values) == expected  # from the memo
