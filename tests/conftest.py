"""Shared helpers for the ct_mmseg tests (CPU only, small tensors)."""
import os
import warnings

import pytest
import torch

os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
warnings.filterwarnings('ignore', message='.*build_loss.*')

import ct_mmseg  # noqa: E402,F401  registers the modules


def make_samples(gt: torch.Tensor):
    """SegDataSamples carrying ``gt`` (B, H, W) as gt_sem_seg."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for mask in gt:
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=mask[None].long())
        samples.append(sample)
    return samples


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory):
    """One small demo Potsdam for the whole session (2 train, 1 val image):
    synthetic raw ISPRS zips converted by MMSeg's own converter."""
    from e2e_utils import prepare_demo_potsdam
    return prepare_demo_potsdam(str(tmp_path_factory.mktemp('potsdam')))
