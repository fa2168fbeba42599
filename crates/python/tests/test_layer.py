"""chaincrf.layer against brute-force enumeration and finite differences."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from chaincrf import layer

RNG = np.random.default_rng(7)


def path_score(e: np.ndarray, tr: np.ndarray, st: np.ndarray, en: np.ndarray, ys: tuple[int, ...]) -> float:
    s = st[ys[0]] + e[0, ys[0]] + en[ys[-1]]
    for t in range(1, len(ys)):
        s += tr[ys[t - 1], ys[t]] + e[t, ys[t]]
    return float(s)


def brute(e: np.ndarray, tr: np.ndarray, st: np.ndarray, en: np.ndarray) -> tuple[float, np.ndarray, tuple[int, ...]]:
    """log Z, node marginals and the best path of one chain, by enumeration."""
    n, k = e.shape
    scores = {ys: path_score(e, tr, st, en, ys) for ys in itertools.product(range(k), repeat=n)}
    finite = [s for s in scores.values() if s > -math.inf]
    top = max(finite)
    log_z = top + math.log(sum(math.exp(s - top) for s in finite))
    marg = np.zeros((n, k))
    for ys, s in scores.items():
        for t, y in enumerate(ys):
            marg[t, y] += math.exp(s - log_z)
    best = max(scores, key=lambda ys: scores[ys])
    return log_z, marg, best


def problem(b: int = 3, time: int = 4, k: int = 3, dtype: type = np.float64):
    e = RNG.normal(size=(b, time, k)).astype(dtype)
    tr = RNG.normal(size=(k, k)).astype(dtype)
    st = RNG.normal(size=k).astype(dtype)
    en = RNG.normal(size=k).astype(dtype)
    lengths = np.array([time, 2, 1][:b], dtype=np.int64)
    tags = RNG.integers(0, k, size=(b, time))
    if b > 1:
        tags[1, 2:] = -100  # padding, ignored
    return e, tags, lengths, tr, st, en


def test_nll_marginals_viterbi_match_enumeration() -> None:
    e, tags, lengths, tr, st, en = problem()
    losses, grads = layer.nll(e, tags, lengths, tr, st, en, reduction="none")
    marg, log_z = layer.marginals(e, lengths, tr, st, en)
    paths, scores = layer.viterbi(e, lengths, tr, st, en)
    for i, n in enumerate(lengths):
        lz, m, best = brute(e[i, :n], tr, st, en)
        gold = tuple(int(y) for y in tags[i, :n])
        assert losses[i] == pytest.approx(lz - path_score(e[i, :n], tr, st, en, gold), abs=1e-10)
        assert losses[i] >= 0
        assert log_z[i] == pytest.approx(lz, abs=1e-10)
        np.testing.assert_allclose(marg[i, :n], m, atol=1e-10)
        assert (marg[i, n:] == 0).all()
        assert tuple(paths[i, :n]) == best and (paths[i, n:] == -1).all()
        assert scores[i] == pytest.approx(path_score(e[i, :n], tr, st, en, best), abs=1e-10)
        # d NLL / d emissions = marginals - gold indicator.
        expected = m.copy()
        for t, y in enumerate(gold):
            expected[t, y] -= 1
        np.testing.assert_allclose(grads["emissions"][i, :n], expected, atol=1e-10)
        assert (grads["emissions"][i, n:] == 0).all()


def test_gradients_match_finite_differences() -> None:
    e, tags, lengths, tr, st, en = problem()
    _, grads = layer.nll(e, tags, lengths, tr, st, en, reduction="mean")
    h = 1e-6
    for name, array in [("emissions", e), ("transitions", tr), ("start", st), ("end", en)]:
        numeric = np.zeros_like(array)
        for idx in np.ndindex(array.shape):
            old = array[idx]
            array[idx] = old + h
            up, _ = layer.nll(e, tags, lengths, tr, st, en)
            array[idx] = old - h
            down, _ = layer.nll(e, tags, lengths, tr, st, en)
            array[idx] = old
            numeric[idx] = (up - down) / (2 * h)
        np.testing.assert_allclose(grads[name], numeric, atol=1e-6, err_msg=name)
        assert grads[name].shape == array.shape


def test_reductions() -> None:
    e, tags, lengths, tr, _, _ = problem()
    per, g_none = layer.nll(e, tags, lengths, tr, reduction="none")
    total, g_sum = layer.nll(e, tags, lengths, tr, reduction="sum")
    mean, g_mean = layer.nll(e, tags, lengths, tr, reduction="mean")
    token, g_token = layer.nll(e, tags, lengths, tr, reduction="token_mean")
    assert per.shape == (3,)
    assert total == pytest.approx(per.sum())
    assert mean == pytest.approx(per.sum() / 3)
    assert token == pytest.approx(per.sum() / lengths.sum())
    np.testing.assert_allclose(g_none["transitions"], g_sum["transitions"])
    np.testing.assert_allclose(g_mean["emissions"] * 3, g_sum["emissions"])
    np.testing.assert_allclose(g_token["emissions"] * lengths.sum(), g_sum["emissions"])
    assert set(g_sum) == {"emissions", "transitions"}


def test_forbidden_transitions_are_exact() -> None:
    e, _, lengths, tr, st, en = problem(b=1, time=4, k=3)
    tr[0, 1] = -np.inf
    st[2] = -np.inf
    marg, _ = layer.marginals(e, lengths, tr, st, en)
    assert marg[0, 0, 2] == 0.0
    _, m, best = brute(e[0], tr, st, en)
    np.testing.assert_allclose(marg[0], m, atol=1e-10)
    paths, _ = layer.viterbi(e, lengths, tr, st, en)
    assert tuple(paths[0]) == best
    good = np.array([[1, 0, 0, 0]])
    loss, grads = layer.nll(e, good, lengths, tr, st, en)
    assert math.isfinite(loss) and np.isfinite(grads["transitions"]).all()
    with pytest.raises(ValueError):
        layer.nll(e, np.array([[0, 1, 0, 0]]), lengths, tr, st, en)  # uses 0 -> 1


def test_float32_in_float32_out_and_thread_count() -> None:
    e, tags, lengths, tr, st, en = problem(dtype=np.float32)
    loss32, g32 = layer.nll(e, tags, lengths, tr, st, en)
    loss64, g64 = layer.nll(e.astype(np.float64), tags, lengths, tr.astype(np.float64), st, en)
    assert g32["emissions"].dtype == np.float32 and g64["emissions"].dtype == np.float64
    assert loss32 == pytest.approx(loss64, rel=1e-12)
    np.testing.assert_allclose(g32["emissions"], g64["emissions"], rtol=1e-6, atol=1e-7)
    big = RNG.normal(size=(64, 20, 5))
    bt = RNG.integers(0, 5, size=(64, 20))
    btr = RNG.normal(size=(5, 5))
    one = layer.nll(big, bt, None, btr, n_jobs=1)
    two = layer.nll(big, bt, None, btr, n_jobs=2)
    assert one[0] == two[0]
    np.testing.assert_array_equal(one[1]["emissions"], two[1]["emissions"])


def test_long_sequence_does_not_overflow() -> None:
    n, k = 100_000, 4
    e = RNG.normal(size=(1, n, k)) * 5
    tags = RNG.integers(0, k, size=(1, n))
    tr = RNG.normal(size=(k, k))
    loss, grads = layer.nll(e, tags, None, tr)
    assert math.isfinite(loss) and loss > 0 and np.isfinite(grads["emissions"]).all()


@pytest.mark.parametrize(
    ("change", "error", "fragment"),
    [
        ({"emissions": np.zeros((4, 3))}, ValueError, r"shape \(batch, time, labels\)"),
        ({"emissions": np.zeros((3, 4, 3), dtype=np.int64)}, TypeError, "float32 or float64"),
        ({"emissions": [[[0.0]]]}, TypeError, "numpy array"),
        ({"transitions": np.zeros((3, 2))}, ValueError, r"transitions must have shape \(3, 3\)"),
        ({"tags": np.zeros((3, 5), dtype=np.int64)}, ValueError, r"tags must have shape \(3, 4\)"),
        ({"tags": np.full((3, 4), 7)}, ValueError, r"tags\[0, 0\] = 7"),
        ({"tags": np.zeros((3, 4))}, TypeError, "integer"),
        ({"lengths": np.array([5, 1, 1])}, ValueError, r"lengths\[0\] = 5"),
        ({"lengths": np.array([1, 1])}, ValueError, "one per sequence"),
        ({"start": np.zeros(2)}, ValueError, r"start must have shape \(3,\)"),
        ({"reduction": "average"}, ValueError, "reduction must be one of"),
        ({"emissions": np.full((3, 4, 3), np.nan)}, ValueError, "emissions holds NaN"),
        ({"transitions": np.full((3, 3), np.inf)}, ValueError, "transitions holds inf"),
    ],
)
def test_bad_input(change: dict, error: type, fragment: str) -> None:
    e, tags, lengths, tr, st, en = problem()
    args = {"emissions": e, "tags": tags, "lengths": lengths, "transitions": tr, "start": st, "end": en}
    args.update(change)
    with pytest.raises(error, match=fragment):
        layer.nll(**args)
