"""``diagnose.py``: why a model does not learn, found before a long run is spent.

Each check measures one way training goes wrong (data, labels, split, model input, learning)
and returns a :class:`~hmsbrain.diagnose.report.Check`: PASS, WARN or FAIL, what was measured
and what to do. :mod:`hmsbrain.diagnose.runner` builds the shared state once and runs them all.
"""
