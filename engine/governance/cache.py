"""The one cache shape governance uses on the request path (authentications, grants,
rate limits): a dict valid for one governance generation. A lookup under a newer
generation empties it first; a value computed under an older one is not kept. Every
change to who may do what bumps the generation in its own transaction, so a process
never answers from what it remembered before the change.
"""
from __future__ import annotations

import threading
from typing import Any

from cairn.engine.governance.principals import read_generation
from cairn.engine.store.lmdbenv import LmdbEnv

MISSING = object()


class GenerationCache:
    def __init__(self, lenv: LmdbEnv, max_size: int):
        self._env = lenv
        self._max = max_size
        self._lock = threading.Lock()
        self._generation = -1
        self._values: dict[Any, Any] = {}

    def lookup(self, key: Any, generation: int | None = None) -> tuple[Any, int]:
        """(the value or MISSING, the generation it is for: `generation`, or read now)."""
        if generation is None:
            generation = read_generation(self._env)
        with self._lock:
            if generation != self._generation:
                self._values.clear()
                self._generation = generation
            return self._values.get(key, MISSING), generation

    def store(self, key: Any, value: Any, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                if len(self._values) >= self._max:
                    self._values.clear()
                self._values[key] = value
