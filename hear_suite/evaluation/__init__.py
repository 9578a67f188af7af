"""Evaluation with the HEAR 2021 kit (heareval) on a current stack.

- :mod:`hear_suite.evaluation.make_tasks`: ``hear-suite make-tasks``, generated HEAR tasks
  (generators in :mod:`hear_suite.evaluation.generators`).
- :mod:`hear_suite.evaluation.hear2021`: ``make-tasks --suite hear2021``, replicas of the 20
  HEAR 2021 task directories (synthetic audio from :mod:`~hear_suite.evaluation.replica_audio`
  and :mod:`~hear_suite.evaluation.replica_voice`).
- :mod:`hear_suite.evaluation.driver`: ``hear-suite eval``, embeddings + downstream probes +
  results table for one or more HEAR modules over the tasks of an ``eval_configs/*.yaml``.
- :mod:`hear_suite.evaluation.heareval_compat`: the launcher that runs heareval's steps with
  the workarounds for Python 3.11 / torch 2 / pytorch-lightning 1.9 / GPU machines.
- :mod:`hear_suite.evaluation.results`: scores files -> CSV, Markdown and a bar chart.

Nothing here is imported by the models: embedding never needs heareval or TensorFlow.
"""
