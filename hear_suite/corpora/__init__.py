"""Synthetic corpora written as HEAR tasks.

- :mod:`hear_suite.corpora.speech`: speakers and ``speak(text, speaker)`` (espeak-ng, Festival).
- :mod:`hear_suite.corpora.effects`: noise, reverberation, gain, timing (numpy and sox).
- :mod:`hear_suite.corpora.keywords`: the 35-word keyword-spotting corpus.
- :mod:`hear_suite.corpora.cli`: ``hear-suite make-corpus``.
"""
