"""Evaluation with the HEAR 2021 kit (heareval) on a current stack.

- :mod:`hear_suite.evaluation.driver`: ``hear-suite eval``, embeddings + downstream probes +
  results table for one or more HEAR modules over the tasks of an ``eval_configs/*.yaml``.
- :mod:`hear_suite.evaluation.heareval_compat`: the launcher that runs heareval's steps with
  the workarounds for Python 3.11 / torch 2 / pytorch-lightning 1.9 / GPU machines.
- :mod:`hear_suite.evaluation.results`: scores files -> CSV, Markdown and a bar chart.

The tasks it runs on come from anywhere: the real HEAR 2021 archives, or the generated suites
and replicas of :mod:`hear_suite.taskgen`. Nothing here is imported by the models: embedding
never needs heareval or TensorFlow.
"""
