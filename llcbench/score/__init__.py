"""Scores of LLC estimators, read from the store and the shipped references only.

One concept per module: ``select`` (which runs, grouped by estimator ×
config per llcbench version, seeds aggregated per case), ``bias``,
``ordinality``, ``calibration``, ``sensitivity`` (over sweeps), ``cost``;
``scores`` assembles the ``scores.json`` document (schema: docs/scores.md).
"""

from .scores import SCHEMA, build_scores, score_block

__all__ = ["SCHEMA", "build_scores", "score_block"]
