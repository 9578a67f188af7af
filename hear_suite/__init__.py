"""hear_suite: audio embedding models as HEAR 2021 plugins.

Each model is a submodule exposing the HEAR common API (``load_model``,
``get_timestamp_embeddings``, ``get_scene_embeddings``)::

    import hear_suite.kwmlp as kwmlp
    model = kwmlp.load_model()                      # shipped weights/kwmlp_real.pt
    emb, ts = kwmlp.get_timestamp_embeddings(audio, model)

Importing this package is cheap and silent: models load only when their submodule is used.
"""
from hear_suite.version import __version__

__all__ = ["__version__"]
