"""Registry nodes of ct_mmseg's ADCLR, under mmpretrain's registries.

ADCLR is trained by mmpretrain (``mim train mmpretrain``), so its
algorithms, backbone, neck, heads, loss and hook live in children of
mmpretrain's ``MODELS`` and ``HOOKS`` with scope ``ct_mmseg``. A config
writes ``type='ct_mmseg.ADCLR'`` (under ``default_scope='mmpretrain'``) and
MMEngine imports ``ct_mmseg.registry`` by itself, which imports ``ct_mmseg``
and with it this subpackage: no ``custom_imports`` needed.

The segmentation side (the hook that checks a pretrained backbone loaded) is
registered in ct_mmseg's MMSeg registries (``ct_mmseg.registry``), next to
the CT runner and hook.
"""
from mmengine.registry import Registry
from mmpretrain.registry import HOOKS as MMPRETRAIN_HOOKS
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

MODELS = Registry('model', parent=MMPRETRAIN_MODELS, scope='ct_mmseg')
HOOKS = Registry('hook', parent=MMPRETRAIN_HOOKS, scope='ct_mmseg')
