"""The toy plugin, except that timestamp embeddings raise: event tasks fail, scene tasks work.
Used to check that one failing task does not stop or lose the others."""
from plugins.toy_plugin import get_scene_embeddings, load_model  # noqa: F401


def get_timestamp_embeddings(audio, model):
    raise RuntimeError("flaky_plugin: timestamp embeddings are broken on purpose")
