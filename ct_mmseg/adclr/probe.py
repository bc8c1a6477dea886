"""Former name of :mod:`ct_mmseg.adclr.knn_eval`, kept only because
``tools/probe_tokens.py`` still imports ``build_frozen_vit`` and ``probe``
from here; new code imports knn_eval."""
from .knn_eval import build_frozen_vit  # noqa: F401
from .knn_eval import knn_and_linear_eval as probe  # noqa: F401
