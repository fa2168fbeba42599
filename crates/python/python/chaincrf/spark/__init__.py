"""Chinese word segmentation in Spark: DataFrames and text files.

* :func:`segment` adds an ``array<string>`` column of words (the words of
  ``chaincrf.cws.Segmenter.cut``) to a DataFrame, keeping every column; it
  runs map-only over partitions through Arrow (``mapInPandas``).
* :func:`segment_text_files` (and ``python -m chaincrf.spark INPUT OUTPUT
  --model PATH``) segments a text file or folder into part files of
  space-separated words, one line per input line, in input order: the part
  files concatenated in name order are what ``chaincrf cws segment`` writes.

Each executor's Python worker loads the model once (a module-level cache
keyed by the model's path and options; Spark reuses its Python workers) and
segments one batch at a time. The model file must be readable on every
executor: a path on shared storage, or shipped with the job (``spark-submit
--files pku.model``, or ``SparkContext.addFile``), in which case the file is
found by its name through ``SparkFiles``. The package itself must be
installed on the executors (the wheel in their environment, or
``--py-files``/``--archives`` with a packed virtual environment).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Optional, Union

from ..cws import Segmenter

if TYPE_CHECKING:
    from pyspark import SparkContext
    from pyspark.sql import DataFrame

__all__ = ["executor_segmenter", "segment", "segment_text_files"]

PathLike = Union[str, "os.PathLike[str]"]

# (model path, user dictionary path, keep_latin) -> Segmenter, per process.
_LOADED: dict[tuple[str, Optional[str], bool], Segmenter] = {}
_LOCK = threading.Lock()


def _resolve(path: str) -> str:
    """``path`` itself when it exists here, else the file of that name
    shipped with the job (``--files`` / ``addFile``)."""
    if os.path.exists(path):
        return path
    try:
        from pyspark import SparkFiles

        shipped = SparkFiles.get(os.path.basename(path))
    except Exception:  # no Spark context files here
        return path
    return shipped if os.path.exists(shipped) else path


def executor_segmenter(model_path: str, user_dict: Optional[str] = None, keep_latin: bool = False) -> Segmenter:
    """This process's segmenter for these settings, loaded on first use."""
    key = (model_path, user_dict, keep_latin)
    with _LOCK:
        seg = _LOADED.get(key)
        if seg is None:
            seg = Segmenter(
                _resolve(model_path),
                user_dict=_resolve(user_dict) if user_dict is not None else None,
                keep_latin=keep_latin,
            )
            _LOADED[key] = seg
        return seg


def segment(
    df: DataFrame,
    input_col: str,
    output_col: str,
    model_path: PathLike,
    *,
    user_dict: Optional[PathLike] = None,
    keep_latin: bool = False,
    threads: int = 1,
) -> DataFrame:
    """``df`` with ``output_col``, an ``array<string>`` of the words of
    ``input_col`` (null where it is null), every other column kept.

    ``threads`` is per Python worker; Spark already runs one worker per task
    slot, so 1 uses the cores it was given without oversubscribing them.
    """
    from pyspark.sql.types import ArrayType, StringType, StructField, StructType

    if input_col not in df.columns:
        raise ValueError(f"no column {input_col!r} in the DataFrame (columns: {df.columns})")
    if not isinstance(df.schema[input_col].dataType, StringType):
        raise TypeError(f"column {input_col!r} must be a string column, not {df.schema[input_col].dataType}")
    if output_col in df.columns:
        raise ValueError(f"the DataFrame already has a column {output_col!r}")
    if threads < 1:
        raise ValueError("threads must be at least 1")
    schema = StructType([*df.schema.fields, StructField(output_col, ArrayType(StringType(), False), True)])
    settings = (os.fspath(model_path), os.fspath(user_dict) if user_dict is not None else None, keep_latin)

    def run(batches: Iterable[Any]) -> Iterator[Any]:
        seg = executor_segmenter(*settings)
        for pdf in batches:
            texts = pdf[input_col].tolist()
            present = [isinstance(t, str) for t in texts]
            words = seg.cut_many([t if p else "" for t, p in zip(texts, present)], threads)
            pdf[output_col] = [w if p else None for w, p in zip(words, present)]
            yield pdf

    return df.mapInPandas(run, schema)


def _input_files(sc: SparkContext, input_path: str) -> list[str]:
    """The input's files in order: the file itself, or a folder's regular,
    non-hidden files sorted by name (as ``cat folder/*`` reads them)."""
    if os.path.isdir(input_path):
        names = sorted(n for n in os.listdir(input_path) if not n.startswith((".", "_")))
        files = [os.path.join(input_path, n) for n in names if os.path.isfile(os.path.join(input_path, n))]
        if not files:
            raise ValueError(f"{input_path}: no input files in this folder")
        return files
    if os.path.exists(input_path) or "://" in input_path:
        return [input_path]
    raise FileNotFoundError(f"{input_path}: no such file or folder")


def segment_text_files(
    sc: SparkContext,
    input_path: str,
    output_path: str,
    model_path: PathLike,
    *,
    user_dict: Optional[PathLike] = None,
    keep_latin: bool = False,
    min_partitions: Optional[int] = None,
    batch_lines: int = 4096,
) -> None:
    """Segments the lines of ``input_path`` (a file or a folder of files)
    into part files under ``output_path`` (which must not exist), in input
    order. A UTF-8 byte-order mark at the start of a file is dropped, as the
    command line does. Lines are segmented ``batch_lines`` at a time (4096
    lines of Chinese text are about 1 MB)."""
    if batch_lines < 1:
        raise ValueError("batch_lines must be at least 1")
    files = _input_files(sc, input_path)
    rdds = [sc.textFile(f, minPartitions=min_partitions) for f in files]
    # A file's first line is the first line of its first partition.
    firsts, start = set(), 0
    for rdd in rdds:
        firsts.add(start)
        start += rdd.getNumPartitions()
    settings = (os.fspath(model_path), os.fspath(user_dict) if user_dict is not None else None, keep_latin)

    # Each record written is a batch's lines joined by newlines (the writer
    # ends every record with one), not one record per line: the part files
    # are the same, and the Python worker and the JVM's writer handle a few
    # hundred records per partition instead of one per line.
    def run(index: int, lines: Iterator[str]) -> Iterator[str]:
        seg = executor_segmenter(*settings)
        batch: list[str] = []
        first = index in firsts
        for line in lines:
            if first:
                line = line.removeprefix("\ufeff")
                first = False
            batch.append(line)
            if len(batch) == batch_lines:
                yield seg.segment_lines(batch, 1)[:-1]
                batch = []
        if batch:
            yield seg.segment_lines(batch, 1)[:-1]

    sc.union(rdds).mapPartitionsWithIndex(run, preservesPartitioning=True).saveAsTextFile(output_path)
