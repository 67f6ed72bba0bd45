"""The path of one trial, a module per step: data (``_data``) -> train (``_models``, ``_paradigm``, ``_transfer``,
``_loop``, ``_pretrain``, ``_train``) -> CAMs (``_cams``) -> post-processing (``_postprocess``, ``_pool``) ->
metrics (``_evaluation``, ``_metrics``) -> stage 3 (``_segment``); ``_trial`` runs them in order.

Every expensive step goes through the stage cache under a key from :mod:`ablate.cache._keys`. The public names are
re-exported by :mod:`ablate` (imported when first used, so commands that train nothing never import torch).
"""
