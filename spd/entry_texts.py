"""The texts of a mapping's top-level entries, memoized: writing (YAML) or hashing (JSON) the
many similar configs of a sweep, which share all but a few of their values, renders each
distinct entry once instead of once per config."""

import marshal
from collections.abc import Callable, Iterable
from typing import Any

MAX_ENTRIES = 10_000
"""Entry texts an EntryTexts keeps; more are forgotten all at once and rendered again."""


class EntryTexts:
    """`render(key, value)` of each entry, memoized, for JSON-like values (str keys; str, int,
    float, bool, None, lists and dicts of them) such as `model_dump(mode="json")` gives."""

    def __init__(self, render: Callable[[str, Any], str]) -> None:
        self._render = render
        self._texts: dict[tuple[str, bytes], str] = {}

    def __call__(self, entries: Iterable[tuple[str, Any]]) -> list[str]:
        # One call for all the entries of a mapping: a call per entry cost more than the lookup.
        texts = []
        for key, value in entries:
            # marshal tells apart the values that are written differently (1, 1.0, True and "1"
            # differ in it) at half the cost of repr; its version 2 writes no back-references,
            # which depend on reference counts, so equal values give equal bytes.
            memo_key = (key, marshal.dumps(value, 2))
            text = self._texts.get(memo_key)
            if text is None:
                if len(self._texts) >= MAX_ENTRIES:
                    self._texts.clear()
                text = self._texts[memo_key] = self._render(key, value)
            texts.append(text)
        return texts
