"""chaincrf: linear-chain CRFs from Python.

* ``chaincrf.sklearn_crfsuite`` -- sklearn-crfsuite's ``CRF`` estimator and helpers;
* ``chaincrf.pycrfsuite`` -- python-crfsuite's ``Trainer``, ``Tagger`` and ``ItemSequence``;
* ``chaincrf.layer`` -- the CRF as a loss layer over numpy arrays.

Users of sklearn-crfsuite or python-crfsuite switch by changing the import:
``from chaincrf import sklearn_crfsuite`` or ``from chaincrf import pycrfsuite``.
"""

from ._native import __version__

__all__ = ["__version__"]
