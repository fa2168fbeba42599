"""The linear-chain CRF as a loss layer over numpy arrays.

Scores come from elsewhere (a neural network): ``emissions`` of shape
``(batch, time, labels)``, a ``(labels, labels)`` ``transitions`` matrix
(``transitions[i, j]`` scores label ``i`` followed by ``j``), optional
``start`` and ``end`` scores, and ``lengths`` saying how many leading
positions of each padded row are real (None = all). ``nll`` returns the
negative log-likelihood of gold ``tags`` with its exact gradients, for a
training step written in numpy or handed to an autograd framework.

Arrays may be float32 or float64; the computation is float64 and
gradients come back in the emissions' dtype. A score of ``-inf`` forbids a
transition, start or end exactly; NaN and ``+inf`` are errors. ``reduction``
is core's ``Reduction``: ``"none"`` (one loss per sequence; gradients of
their sum), ``"sum"``, ``"mean"`` (over sequences) or ``"token_mean"``
(over real positions). The GIL is released during the computation and
``n_jobs`` threads share the batch (None = 1, -1 = every core); results do
not depend on the thread count.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from . import _native, _params

__all__ = ["marginals", "nll", "viterbi"]

Array = np.ndarray


def nll(
    emissions: Array,
    tags: Array,
    lengths: Optional[Array],
    transitions: Array,
    start: Optional[Array] = None,
    end: Optional[Array] = None,
    reduction: str = "mean",
    *,
    n_jobs: Optional[int] = None,
) -> tuple[Union[float, Array], dict[str, Array]]:
    """Negative log-likelihood of ``tags`` (``(batch, time)`` label ids) and its gradients.

    Returns ``(loss, grads)``: ``loss`` is a float (an array of one loss per
    sequence for ``reduction="none"``), always >= 0; ``grads`` maps
    ``"emissions"``, ``"transitions"`` and, when given, ``"start"`` and
    ``"end"`` to arrays shaped like those inputs. Tags at padded positions
    are ignored whatever they hold (e.g. -100).
    """
    return _native.nll(emissions, tags, lengths, transitions, start, end, reduction, _params.resolve_n_jobs(n_jobs))


def viterbi(
    emissions: Array,
    lengths: Optional[Array],
    transitions: Array,
    start: Optional[Array] = None,
    end: Optional[Array] = None,
    *,
    n_jobs: Optional[int] = None,
) -> tuple[Array, Array]:
    """The best label sequence of each row: ``(paths, scores)``.

    ``paths`` is an int64 ``(batch, time)`` array padded with -1 after each
    sequence's length; ``scores`` holds each path's score (float64).
    """
    return _native.viterbi(emissions, lengths, transitions, start, end, _params.resolve_n_jobs(n_jobs))


def marginals(
    emissions: Array,
    lengths: Optional[Array],
    transitions: Array,
    start: Optional[Array] = None,
    end: Optional[Array] = None,
    *,
    n_jobs: Optional[int] = None,
) -> tuple[Array, Array]:
    """Node marginals ``P(y_t = y)`` (``(batch, time, labels)``, rows of padded
    positions 0) and each sequence's log partition function ``log Z``."""
    return _native.marginals(emissions, lengths, transitions, start, end, _params.resolve_n_jobs(n_jobs))
