"""Train a spacy-pkuseg model on the corpus chaincrf's default model learns from.

    python crates/python/bench/pkuseg_model.py --data $CHAINCRF_DATA --out pkuseg-199801 [--iterations 20]

spacy-pkuseg's own models (``spacy_ontonotes``, ``mixed``, ...) download from
GitHub on first use and are trained on other corpora, so a row of theirs would
measure the corpus as much as the tool. This trains pkuseg on ``199801.txt``
with chaincrf's held-out split (every 20th sentence held out, the rest
trained on, as ``scripts/main-job.sh`` does), writing pkuseg's plain-words
files beside the model. ``bench/cws.py --pkuseg-model OUT/model`` then times
it and scores it on the Bakeoff test set next to chaincrf and jieba.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def words_of(line: str) -> list[str]:
    """The words of one ``199801.txt`` line: ``word/tag`` tokens, with
    ``[`` opening and ``]tag`` closing a compound's bracket."""
    words = []
    for token in line.split():
        word = token.rsplit("/", 1)[0]
        if word.startswith("[") and len(word) > 1:
            word = word[1:]
        words.append(word)
    return words


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the shared data folder ($CHAINCRF_DATA)")
    ap.add_argument("--out", required=True, type=Path, help="a folder for the word files and the model")
    ap.add_argument("--iterations", type=int, default=20, help="pkuseg's training iterations (its default: 20)")
    args = ap.parse_args()

    import spacy_pkuseg

    corpus = Path(args.data, "pku-199801", "199801.txt")
    train, held_out = [], []
    with corpus.open(encoding="utf-8") as lines:
        for i, line in enumerate(lines):
            words = words_of(line)
            if words:
                (held_out if i % 20 == 19 else train).append(" ".join(words))
    args.out.mkdir(parents=True, exist_ok=True)
    train_file, held_out_file = args.out / "train.txt", args.out / "held_out.txt"
    train_file.write_text("\n".join(train) + "\n", encoding="utf-8")
    held_out_file.write_text("\n".join(held_out) + "\n", encoding="utf-8")
    print(f"{len(train)} training sentences, {len(held_out)} held out")
    start = time.perf_counter()
    spacy_pkuseg.train(str(train_file), str(held_out_file), str(args.out / "model"), train_iter=args.iterations)
    print(f"pkuseg trained in {time.perf_counter() - start:.1f} s: {args.out / 'model'}")


if __name__ == "__main__":
    main()
