"""HEAR task generation: suites of HEAR task directories made from synthetic audio.

- :mod:`hear_suite.taskgen.make_tasks`: ``hear-suite make-tasks``, every suite by name.
- :mod:`hear_suite.taskgen.generators`: the generated suites (``default``, ``numpy``, ``ci``):
  spoken words, notes, mixtures, events in scenes, a k-fold task.
- :mod:`hear_suite.taskgen.hear2021`: ``--suite hear2021``, replicas of the 20 HEAR 2021 task
  directories (their metadata, vocabularies, folds and clip lengths; synthetic audio).

Running and scoring the evaluation is :mod:`hear_suite.evaluation`'s job; the training corpora
(real recordings, keywords, general audio) are :mod:`hear_suite.corpora`'s.
"""
