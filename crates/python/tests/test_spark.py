"""chaincrf.spark on a local[1] Spark (skipped without PySpark and Java).

PySpark is a ~300 MB download: scripts/test.sh installs it only with
CHAINCRF_TEST_SPARK=1, and scripts/spark-local.sh runs the bigger local[2]
checks. One session is started for the whole module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cws_data import SENTENCES, write_corpus

pyspark = pytest.importorskip("pyspark", reason="PySpark is not installed (CHAINCRF_TEST_SPARK=1 scripts/test.sh)")
pytest.importorskip("pandas", reason="chaincrf.spark needs pandas")
pytest.importorskip("pyarrow", reason="chaincrf.spark needs pyarrow")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs Java (none on PATH, JAVA_HOME unset)", allow_module_level=True)

from pyspark.sql import SparkSession  # noqa: E402

from chaincrf import spark as cspark  # noqa: E402
from chaincrf.cws import Segmenter  # noqa: E402

LINES = [
    "\ufeff共同创造美好的新世纪",
    "",
    "  我们 热爱和平  ",
    "北京\t是中国的首都",
    "😀中国人民😀 共同创造历史 ",
    *[s.replace(" ", "") for s in SENTENCES],
]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from chaincrf import cws

    folder = tmp_path_factory.mktemp("spark-model")
    path = folder / "tiny.model"
    cws.train(write_corpus(folder), path, progress=False, lexicon_folds=2, threads=1)
    return path


@pytest.fixture(scope="module")
def session() -> Iterator[SparkSession]:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("chaincrf-test")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield spark
    spark.stop()


def test_segment_dataframe(session: SparkSession, model: Path) -> None:
    rows = [(i, line) for i, line in enumerate(LINES)] + [(len(LINES), None)]
    df = session.createDataFrame(rows, "id long, text string").repartition(3)
    out = cspark.segment(df, "text", "words", model)
    assert out.columns == ["id", "text", "words"]
    assert str(out.schema["words"].dataType).startswith("ArrayType(StringType")
    got = {r["id"]: (r["text"], r["words"]) for r in out.collect()}
    seg = Segmenter(model)
    assert len(got) == len(rows)
    for i, text in rows:
        assert got[i][0] == text
        assert got[i][1] == (None if text is None else seg.cut(text))
    with pytest.raises(ValueError, match="no column"):
        cspark.segment(df, "nope", "words", model)
    with pytest.raises(ValueError, match="already has"):
        cspark.segment(df, "text", "id", model)
    with pytest.raises(TypeError, match="string column"):
        cspark.segment(df, "id", "words", model)


def test_text_files_in_input_order(session: SparkSession, model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    many = LINES * 40
    (folder / "b.txt").write_text("\n".join(many) + "\n", encoding="utf-8")
    (folder / "a.txt").write_text("\n".join(reversed(LINES)), encoding="utf-8")  # no final newline
    (folder / ".hidden").write_text("ignored\n", encoding="utf-8")
    seg = Segmenter(model)
    # A byte-order mark is dropped at the start of a file only, as `chaincrf cws segment` does.
    lines = [*reversed(LINES), many[0].removeprefix("\ufeff"), *many[1:]]
    # Whole partitions in one batch, and batches of 7 lines (a part file holds several records of lines).
    for batch_lines, out in ((4096, tmp_path / "out"), (7, tmp_path / "out7")):
        cspark.segment_text_files(
            session.sparkContext, str(folder), str(out), model, min_partitions=3, batch_lines=batch_lines
        )
        parts = sorted(out.glob("part-*"))
        assert len(parts) >= 4
        assert "".join(p.read_text(encoding="utf-8") for p in parts) == seg.segment_lines(lines)
    with pytest.raises(ValueError, match="batch_lines"):
        cspark.segment_text_files(session.sparkContext, str(folder), str(tmp_path / "o0"), model, batch_lines=0)
    with pytest.raises(FileNotFoundError):
        cspark.segment_text_files(session.sparkContext, str(tmp_path / "none"), str(tmp_path / "o2"), model)


def test_command_line_matches_the_cli_format(model: Path, tmp_path: Path, session: SparkSession) -> None:
    # The command starts its own context; stop the module's first (one per process).
    session.stop()
    src = tmp_path / "input.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    done = subprocess.run(
        [sys.executable, "-m", "chaincrf.spark", str(src), str(out), "--model", str(model), "--master", "local[1]"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = "".join(p.read_text(encoding="utf-8") for p in sorted(out.glob("part-*")))
    assert got == Segmenter(model).segment_lines([line.removeprefix("\ufeff") for line in LINES])
