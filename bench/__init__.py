"""chaincrf's benchmark harness: chaincrf against CRFsuite (python-crfsuite) and crfs.

Every measured run is a child process; its wall time and peak RSS come from the
operating system (``os.wait4``), its progress from the tool's machine-readable
output (``chaincrf train --progress-jsonl/--summary-json``, CRFsuite's log
records), and each run's record is one JSON file under
``bench/runs/<date>-<machine>/``. ``report`` and ``plot`` read only those files,
so a table can be rebuilt, or two runs compared, without training again.

Run ``python3 -m bench --help`` from the repository root.
"""
