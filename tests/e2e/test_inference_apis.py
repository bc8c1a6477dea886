"""From a trained CT model to predictions, as an MMSeg user gets them.

A tiny CT model is trained through MMSeg's tools/train.py on the fragment
config. Then, each in a fresh process that imports MMSeg only (never
ct_mmseg):

* ``init_model`` + ``inference_model`` + ``show_result_pyplot`` and
  ``MMSegInferencer`` on the CT config and its training checkpoint: no key
  warning, a picture written, and the predictions of MMSeg's tools/test.py;
* the export (tools/export_ct.py): its checkpoint loads strictly into the
  baseline config of the same model and gives bit-identical logits.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from e2e_utils import REPO, TOOLS, run, tiny_config

ITERS = 2
# the tiny demo pair of the e2e tests, trained ITERS iterations;
# inference_model reads the config's top-level `test_pipeline`, so it is
# set to the dataloaders' pipeline
TINY = '''
_base_ = [{base!r}]
test_pipeline = _base_.val_dataloader.dataset.pipeline
train_cfg = dict(max_iters={iters}, val_interval={iters})
'''

FRESH = r'''
"""Only MMSeg is imported here: never ct_mmseg."""
import json, sys, warnings
import numpy as np
import torch
from mmseg.apis import (MMSegInferencer, inference_model, init_model,
                        show_result_pyplot)

config, checkpoint, image, picture, out = sys.argv[1:6]
warnings.simplefilter('always')
with warnings.catch_warnings(record=True) as caught:
    model = init_model(config, checkpoint, device='cpu')
    result = inference_model(model, image)
    show_result_pyplot(model, image, result, show=False, out_file=picture)
    inferencer = MMSegInferencer(model=config, weights=checkpoint,
                                 device='cpu')
    by_inferencer = inferencer(image, return_datasamples=True)
assert 'ct_mmseg' not in sys.modules, 'ct_mmseg was imported'
np.save(out + '_pred.npy', result.pred_sem_seg.data[0].numpy())
np.save(out + '_pred_inferencer.npy',
        by_inferencer.pred_sem_seg.data[0].numpy())
np.save(out + '_logits.npy', result.seg_logits.data.numpy())
json.dump(dict(warnings=[str(w.message) for w in caught],
               keys=sorted(model.state_dict())), open(out + '.json', 'w'))
'''


@pytest.fixture(scope='module')
def trained(demo_data, tmp_path_factory):
    """(root, CT config, baseline config, checkpoint) of a tiny CT run."""
    root = tmp_path_factory.mktemp('inference')
    configs = {}
    for kind, ct in (('ct', True), ('base', False)):
        path = root / f'inference_{kind}.py'
        path.write_text(TINY.format(base=tiny_config(root, demo_data, ct),
                                    iters=ITERS))
        configs[kind] = str(path)
    run([sys.executable, osp.join(TOOLS, 'train.py'), configs['ct'],
         '--work-dir', root / 'work'], cwd=root)
    return root, configs['ct'], configs['base'], \
        str(root / 'work' / f'iter_{ITERS}.pth')


def fresh_process(root, config, checkpoint, image, name):
    """Run FRESH; returns its record and outputs (``<name>_*.npy``)."""
    script = root / 'fresh.py'
    script.write_text(FRESH)
    out = str(root / name)
    log = run([sys.executable, script, config, checkpoint, image,
               out + '.png', out], cwd=root)
    with open(out + '.json') as f:
        record = json.load(f)
    record['log'] = log
    return record, out


def val_image(demo_data):
    folder = osp.join(demo_data, 'img_dir', 'val')
    return osp.join(folder, sorted(os.listdir(folder))[0])


def test_mmseg_apis_on_the_ct_config_without_importing_ct_mmseg(
        trained, demo_data):
    root, ct_config, _, checkpoint = trained
    image = val_image(demo_data)
    record, out = fresh_process(root, ct_config, checkpoint, image, 'api')
    text = record['log'] + ' '.join(record['warnings'])
    assert 'unexpected key' not in text and 'missing key' not in text
    assert not any('projectors' in k for k in record['keys'])
    # a picture was written
    picture = np.asarray(Image.open(out + '.png'))
    assert picture.ndim == 3 and picture.shape[0] > 0
    # the two APIs agree
    pred = np.load(out + '_pred.npy')
    assert (pred == np.load(out + '_pred_inferencer.npy')).all()
    # ... and equal MMSeg's tools/test.py on the same image (--out writes
    # the predicted labels as PNGs, with reduce_zero_label's shift undone)
    run([sys.executable, osp.join(TOOLS, 'test.py'), ct_config, checkpoint,
         '--work-dir', root / 'test', '--out', root / 'test_pred'],
        cwd=root)
    name = osp.splitext(osp.basename(image))[0] + '.png'
    by_test = np.asarray(Image.open(root / 'test_pred' / name))
    assert by_test.shape == pred.shape
    assert (by_test == pred + 1).all()  # Potsdam: reduce_zero_label


def test_export_loads_strictly_into_the_baseline_with_the_same_logits(
        trained, demo_data):
    root, ct_config, base_config, checkpoint = trained
    run([sys.executable, osp.join(REPO, 'tools', 'export_ct.py'), ct_config,
         checkpoint, '--out-dir', root / 'exported'], cwd=root)
    exported_config = root / 'exported' / f'iter_{ITERS}_inference.py'
    exported = root / 'exported' / f'iter_{ITERS}_inference.pth'
    text = exported_config.read_text()
    assert 'ct_mmseg' not in text and 'ct_head' not in text
    assert 'CTEncoderDecoder' not in text
    # nothing but tensors and plain values: torch's safe unpickler, no
    # allow-list; only the model and where it came from
    saved = torch.load(exported, map_location='cpu', weights_only=True)
    assert set(saved) == {'state_dict', 'meta'}
    # strictly into the baseline config's model
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules()
    model = MODELS.build(Config.fromfile(base_config).model)
    model.load_state_dict(saved['state_dict'], strict=True)
    # the same logits from the exported pair and from the CT pair, each in
    # a fresh process without ct_mmseg
    image = val_image(demo_data)
    _, out_ct = fresh_process(root, ct_config, checkpoint, image, 'ct')
    record, out_exported = fresh_process(root, str(exported_config),
                                         str(exported), image, 'exported')
    assert 'unexpected key' not in record['log']
    assert 'missing key' not in record['log']
    assert np.array_equal(np.load(out_ct + '_logits.npy'),
                          np.load(out_exported + '_logits.npy'))


def test_training_checkpoint_keeps_the_ct_head_for_resume(trained):
    """The CT tensors travel in the checkpoint's ct_mmseg section; the
    message hub is plain data (no allow-list needed to read it)."""
    _, _, _, checkpoint = trained
    saved = torch.load(checkpoint, map_location='cpu', weights_only=True)
    section = saved['ct_mmseg']
    assert section['layout'] == 'single'
    assert section['state_dict'] and all(
        k.startswith('auxiliary_head.1.projectors.')
        for k in section['state_dict'])
    assert not any('projectors' in k for k in saved['state_dict'])
    assert any(k.startswith('auxiliary_head.conv_seg')
               for k in saved['state_dict'])
    assert 'optimizer' in saved and 'message_hub' in saved


def test_fresh_process_really_lacks_ct_mmseg(tmp_path):
    """The probe above fails if ct_mmseg is imported (a control)."""
    out = subprocess.run(
        [sys.executable, '-c', 'import sys, mmseg.apis; '
         'print("ct_mmseg" in sys.modules)'], capture_output=True, text=True,
        env=dict(PYTHONWARNINGS='ignore', CUDA_VISIBLE_DEVICES='',
                 PATH='/usr/bin:/bin'))
    assert out.stdout.strip().splitlines()[-1] == 'False', out.stderr[-2000:]


def test_every_shipped_ct_config_writes_loadable_checkpoints():
    """Each shipped config that trains CT lists CTCheckpointHook (a config
    that sets its own custom_hooks replaces the fragment's list)."""
    import glob

    from mmengine.config import Config
    missing = []
    for path in sorted(glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                                 recursive=True)):
        if '_base_' in path:
            continue
        cfg = Config.fromfile(path)
        if cfg.get('ct_head') is None:
            continue
        hooks = [h.get('type') for h in cfg.get('custom_hooks') or []]
        if 'ct_mmseg.CTCheckpointHook' not in hooks:
            missing.append(osp.relpath(path, REPO))
    assert not missing, missing
