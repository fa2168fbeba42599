"""``python -m chaincrf.spark INPUT OUTPUT --model PATH [--master local[2]]``:
segments a text file or folder with Spark into part files of space-separated
words, one line per input line, in input order (see ``chaincrf.spark``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional

from chaincrf.spark import segment_text_files  # absolute: spark-submit runs this file as a script


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chaincrf.spark",
        description="Segment Chinese text with Spark: one output line per input line, words separated by a space.",
        epilog="Example: python -m chaincrf.spark corpus.txt out/ --model pku.model --master 'local[2]'; "
        "then `cat out/part-*` is what `chaincrf cws segment` writes.",
    )
    parser.add_argument("input", help="text file or folder of text files (UTF-8, one sentence per line)")
    parser.add_argument("output", help="output folder (must not exist); part files in input order")
    parser.add_argument("--model", required=True, help="model file (shipped to executors when not on shared storage)")
    parser.add_argument("--user-dict", help="words that must always come out whole, one per line")
    parser.add_argument("--keep-latin", action="store_true", help="keep runs of Latin letters and digits unsplit")
    parser.add_argument("--master", help="Spark master (default: spark-submit's, else local[*])")
    parser.add_argument("--partitions", type=int, help="at least this many partitions per input file")
    args = parser.parse_args(argv)

    if not os.path.isfile(args.model):
        parser.error(f"--model {args.model}: no such file")
    from pyspark import SparkConf, SparkContext

    conf = SparkConf().setAppName("chaincrf-segment")
    if args.master:
        conf = conf.setMaster(args.master)
    elif not conf.contains("spark.master"):
        conf = conf.setMaster("local[*]")
    started = time.monotonic()
    sc = SparkContext.getOrCreate(conf)
    try:
        sc.addFile(os.path.abspath(args.model))
        if args.user_dict:
            sc.addFile(os.path.abspath(args.user_dict))
        ready = time.monotonic()
        segment_text_files(
            sc,
            args.input,
            args.output,
            os.path.abspath(args.model),
            user_dict=os.path.abspath(args.user_dict) if args.user_dict else None,
            keep_latin=args.keep_latin,
            min_partitions=args.partitions,
        )
        done = time.monotonic()
    finally:
        sc.stop()
    print(
        f"chaincrf.spark: segmented {args.input} into {args.output} in {done - ready:.1f}s "
        f"(Spark start-up {ready - started:.1f}s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
