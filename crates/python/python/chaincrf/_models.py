"""Loading model bytes of either format the package reads."""

from __future__ import annotations

from . import _native


def load_bytes(data: bytes, source: str) -> _native.Model:
    """A model from the bytes of a model file; ``source`` names it in errors.

    Raises ValueError when the bytes are not a model this package reads.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"model data must be bytes, got {type(data).__name__}")
    try:
        return _native.Model.from_bytes(bytes(data))
    except ValueError as e:
        raise ValueError(f"Invalid model file {source}: {e}") from None


def load_file(path: str) -> _native.Model:
    """A model read from ``path`` (OSError when unreadable, ValueError when invalid)."""
    with open(path, "rb") as f:
        data = f.read()
    return load_bytes(data, repr(str(path)))
