"""The contents of a model, as python-crfsuite's ``Tagger.info()`` returns them."""

from __future__ import annotations

__all__ = ["ParsedDump"]


class ParsedDump:
    """A model's parameters.

    Attributes
    ----------
    header : dict
        Sizes and counts (``size``, ``num_attrs``, ``num_labels``, ``num_features``), as strings.
    labels : dict
        ``{label: id}``.
    attributes : dict
        ``{attribute: id}``.
    transitions : dict
        ``{(from_label, to_label): weight}``.
    state_features : dict
        ``{(attribute, label): weight}``.
    """

    def __init__(self) -> None:
        self.header: dict[str, str] = {}
        self.labels: dict[str, str] = {}
        self.attributes: dict[str, str] = {}
        self.transitions: dict[tuple[str, str], float] = {}
        self.state_features: dict[tuple[str, str], float] = {}

    def __repr__(self) -> str:
        return (
            f"<ParsedDump: {len(self.labels)} labels, {len(self.attributes)} attributes, "
            f"{len(self.state_features)} state features, {len(self.transitions)} transitions>"
        )
