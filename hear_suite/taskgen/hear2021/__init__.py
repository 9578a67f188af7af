"""Replicas of the 20 HEAR 2021 task directories: :mod:`~hear_suite.taskgen.hear2021.suite`
(the tasks' facts and the writer), with synthetic audio from
:mod:`~hear_suite.taskgen.hear2021.audio` (sounds, music, events) and
:mod:`~hear_suite.taskgen.hear2021.voice` (voices: words, emotions, talkers, languages)."""
