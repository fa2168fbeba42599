"""Helpers: ``flatten``."""

from __future__ import annotations

from itertools import chain
from typing import Iterable, TypeVar

T = TypeVar("T")

__all__ = ["flatten"]


def flatten(y: Iterable[Iterable[T]]) -> list[T]:
    """Flattens a list of lists.

    >>> flatten([[1, 2], [3, 4]])
    [1, 2, 3, 4]
    """
    return list(chain.from_iterable(y))
