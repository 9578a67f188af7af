"""Embeddings of any audio files with any HEAR module (``hear-suite embed``): inputs
(:mod:`~hear_suite.embed.inputs`), outputs and the index (:mod:`~hear_suite.embed.outputs`), and
the run (:mod:`~hear_suite.embed.run`, :func:`embed_files`)."""
from hear_suite.embed.run import embed_files

__all__ = ["embed_files"]
