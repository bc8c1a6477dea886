"""The CT fragment on stock MMSeg configs: channels measured, keys checked."""
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from ct_mmseg.config_injection import add_ct_to_config
from e2e_utils import REPO

FRAGMENT = osp.join(REPO, 'configs', '_base_', 'contrastive_transformer.py')
SWIN = 'mmseg::swin/swin-{}-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'  # noqa
POOLFORMER = {
    's12': 'mmseg::poolformer/fpn_poolformer_s12_8xb4-40k_ade20k-512x512.py',
    's24': 'mmseg::poolformer/fpn_poolformer_s24_8xb4-40k_ade20k-512x512.py',
    's36': 'mmseg::poolformer/fpn_poolformer_s36_8x4_512x512_40k_ade20k.py',
    'm36': 'mmseg::poolformer/fpn_poolformer_m36_8xb4-40k_ade20k-512x512.py',
    'm48': 'mmseg::poolformer/fpn_poolformer_m48_8xb4-40k_ade20k-512x512.py',
}


def stock_plus_fragment(tmp_path, stock):
    """A user config: a stock config and the fragment, nothing else."""
    path = tmp_path / 'user_cfg.py'
    path.write_text(f'_base_ = [{stock!r}, {FRAGMENT!r}]\n')
    return Config.fromfile(str(path))


def ct_head_of(cfg):
    aux = cfg.model.auxiliary_head
    heads = aux if isinstance(aux, list) else [aux]
    found = [h for h in heads if h.type == 'ContrastiveTransformerHead']
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_stock_swin_gets_ct_with_measured_channels(tmp_path, arch):
    cfg = add_ct_to_config(stock_plus_fragment(tmp_path, SWIN.format(arch)))
    embed = cfg.model.backbone.embed_dims
    head = ct_head_of(cfg)
    assert head.in_channels == [embed, 2 * embed, 4 * embed, 8 * embed]
    assert head.strides == [4, 8, 16, 32]
    assert head.num_classes == 150 and head.ignore_index == 255
    assert cfg.model.type == 'CTEncoderDecoder'
    # the stock FCN auxiliary head is kept, CT is appended
    assert cfg.model.auxiliary_head[0].type == 'FCNHead'


@pytest.mark.parametrize('arch', list(POOLFORMER))
def test_stock_poolformer_gets_ct_with_measured_channels(tmp_path, arch):
    from mmpretrain.models.backbones.poolformer import PoolFormer
    cfg = add_ct_to_config(stock_plus_fragment(tmp_path, POOLFORMER[arch]))
    head = ct_head_of(cfg)
    assert head.in_channels == list(PoolFormer.arch_settings[arch]
                                    ['embed_dims'])
    assert head.strides == [4, 8, 16, 32]
    # the stock custom_imports survive: the fragment adds none of its own
    assert cfg.custom_imports.imports == ['mmpretrain.models']
    # CT must see backbone tokens, not the FPN outputs
    assert cfg.model.type == 'CTEncoderDecoder' and 'neck' in cfg.model


def test_injection_is_idempotent(tmp_path):
    cfg = add_ct_to_config(stock_plus_fragment(tmp_path, SWIN.format('tiny')))
    before = cfg.model.to_dict()
    add_ct_to_config(cfg)
    assert cfg.model.to_dict() == before


@pytest.mark.parametrize('override,error,match', [
    (dict(in_channels=[96, 192, 384, 512]), ValueError,
     r'ct_head.in_channels=\[96, 192, 384, 512\].*expected \[96, 192, 384, 768\]'),
    (dict(in_index=[0, 4]), IndexError,
     r'ct_head.in_index=\[0, 4\].*4 outputs'),
    (dict(strides=[4, 8, 16, 16]), ValueError, r'ct_head.strides'),
])
def test_misconfiguration_fails_at_build_naming_the_key(tmp_path, override,
                                                        error, match):
    cfg = stock_plus_fragment(tmp_path, SWIN.format('tiny'))
    cfg.ct_head.update(override)
    with pytest.raises(error, match=match):
        add_ct_to_config(cfg)


@pytest.mark.parametrize('key,value,match', [
    ('mode', 'triplet', r"ct_head: .*loss_decode\.mode must be one of \('cl', 'infonce'\)"),
    ('temperature', 0.0, r'ct_head: .*loss_decode\.temperature must be > 0'),
])
def test_bad_loss_option_fails_at_build_naming_the_key(tmp_path, key, value,
                                                       match):
    cfg = stock_plus_fragment(tmp_path, SWIN.format('tiny'))
    cfg.ct_head.loss_decode[key] = value
    with pytest.raises(ValueError, match=match):
        add_ct_to_config(cfg)


def test_subset_of_stages(tmp_path):
    cfg = stock_plus_fragment(tmp_path, SWIN.format('tiny'))
    cfg.ct_head.in_index = [2, 3]
    head = ct_head_of(add_ct_to_config(cfg))
    assert head.in_channels == [384, 768] and head.strides == [16, 32]


def test_missing_ct_head_key_is_explained():
    with pytest.raises(KeyError, match='ct_head'):
        add_ct_to_config(Config(dict(model=dict(type='EncoderDecoder'))))


def test_scoped_names_import_the_plugin_by_themselves(tmp_path):
    """A fresh interpreter resolves runner and hook without importing us."""
    path = tmp_path / 'user_cfg.py'
    path.write_text(f'_base_ = [{SWIN.format("tiny")!r}, {FRAGMENT!r}]\n')
    code = (
        'import sys\n'
        'from mmengine.config import Config\n'
        'from mmseg.registry import HOOKS, RUNNERS\n'
        f'cfg = Config.fromfile({str(path)!r})\n'
        "assert 'ct_mmseg' not in sys.modules\n"
        'runner = RUNNERS.get(cfg.runner_type)\n'
        "hook = HOOKS.get(cfg.custom_hooks[0]['type'])\n"
        'print(runner.__name__, hook.__name__)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['CTRunner', 'ContrastiveTransformerHook']


CT_KEYS = ('ct_head', 'runner_type', 'custom_hooks')


@pytest.mark.parametrize('baseline,ct', [
    ('demo/swin-tiny_upernet_potsdam-demo.py',
     'demo/swin-tiny_upernet_ct_potsdam-demo.py'),
    ('demo/dcswin_potsdam-demo.py', 'demo/dcswin_ct_potsdam-demo.py'),
    ('segformer_mit-b0_potsdam-demo.py',
     'segformer_mit-b0_ct_potsdam-demo.py'),
    ('swin-tiny_upernet_4xb4-80k_potsdam-512x512.py',
     'swin-tiny_upernet_ct_4xb4-80k_potsdam-512x512.py'),
])
def test_ct_configs_are_their_baseline_plus_the_fragment(baseline, ct):
    configs = osp.join(REPO, 'configs', 'ct')
    base_cfg = Config.fromfile(osp.join(configs, baseline)).to_dict()
    ct_cfg = Config.fromfile(osp.join(configs, ct)).to_dict()
    assert {k: v for k, v in ct_cfg.items() if k not in CT_KEYS} == base_cfg
    head = ct_head_of(add_ct_to_config(Config(ct_cfg)))
    assert head.num_classes == 6 and len(head.in_channels) == 4
