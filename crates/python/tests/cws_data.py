"""A tiny segmented corpus for training throwaway segmenters in the tests
(a model trained on it in a second is enough to test the API; quality is
tested on the real PKU data when $CHAINCRF_DATA is set)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

SENTENCES = [
    "共同 创造 美好 的 新 世纪",
    "我们 热爱 和平",
    "中国 人民 共同 创造 历史",
    "今天 天气 很 好",
    "北京 是 中国 的 首都",
    "我们 的 人民 热爱 北京",
    "新 世纪 的 中国",
    "人民 创造 美好 的 生活",
    "他们 今天 在 北京 学习",
    "我们 共同 学习 历史",
    "和平 与 发展 是 世纪 的 主题",
    "天气 很 好 ， 我们 去 北京",
]


def write_corpus(folder: Path, repeat: int = 4) -> Path:
    """The corpus in SIGHAN format (words separated by spaces), repeated."""
    path = folder / "tiny.txt"
    path.write_text("\n".join(SENTENCES * repeat) + "\n", encoding="utf-8")
    return path


def data_file(*parts: str) -> Optional[Path]:
    """A file under $CHAINCRF_DATA, or None when the variable is unset."""
    root = os.environ.get("CHAINCRF_DATA")
    return Path(root, *parts) if root else None
