"""A model directory, wherever its files live: the `ModelDir` protocol that model
reading and registration take, a folder on disk, and files held in memory.

The registry's artifact-store folder implements the same protocol
(engine.registry.registration.ArtifactModelDir)."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class ModelDir(Protocol):
    def read(self, path: str) -> bytes:
        """The file at `path` (relative, '/'-separated); KeyError when it is missing."""
        ...

    def paths(self) -> list[str]:
        """Every file, relative, '/'-separated."""
        ...


class LocalModelDir:
    """A model folder on disk. Paths that leave the folder read as missing."""

    def __init__(self, path: str | Path):
        self.root = Path(path)

    def read(self, path: str) -> bytes:
        target = (self.root / path).resolve()
        root = self.root.resolve()
        if root != target and root not in target.parents:
            raise KeyError(path)
        try:
            return target.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(path) from None

    def paths(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def __repr__(self) -> str:
        return f"LocalModelDir({str(self.root)!r})"


class MemoryModelDir:
    """Model files held in memory: relative path -> bytes."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)

    def read(self, path: str) -> bytes:
        return self.files[path]

    def paths(self) -> list[str]:
        return sorted(self.files)

    def __repr__(self) -> str:
        return f"MemoryModelDir({len(self.files)} files)"


def as_model_dir(source: ModelDir | str | Path | dict) -> ModelDir:
    """A ModelDir from a ModelDir, a folder path or a dict of files."""
    if isinstance(source, (str, Path)):
        return LocalModelDir(source)
    if isinstance(source, dict):
        return MemoryModelDir(source)
    return source


__all__ = ["LocalModelDir", "MemoryModelDir", "ModelDir", "as_model_dir"]
