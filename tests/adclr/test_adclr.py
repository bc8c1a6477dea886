"""ADCLR (ct_mmseg.adclr) on a tiny ViT, in-process, CPU: the attention
mask, the teacher, the losses, the schedule hook, bad configs, the handoff
of the backbone to MMSeg's ViT, the k-NN evaluation of frozen tokens."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub

from ct_mmseg.adclr import (ADCLR, DINO, ADCLRHead, BackboneHandoffError,
                            CheckPretrainedBackboneHook, DINOLoss, DINONeck,
                            DINOScheduleHook, check_backbone_keys,
                            query_attention_mask, to_mmseg_vit)
from ct_mmseg.adclr.checkpoint_conversion import backbone_state_dict
from ct_mmseg.adclr.hooks import teacher_temperature
from e2e_utils import REPO, run

EMBED, LAYERS, HEADS, PATCH, VIEW = 64, 2, 2, 16, 64
TINY_VIT = dict(type='ct_mmseg.ADCLRViT',
                arch=dict(embed_dims=EMBED, num_layers=LAYERS,
                          num_heads=HEADS, feedforward_channels=4 * EMBED),
                img_size=VIEW, patch_size=PATCH, out_type='featmap',
                out_indices=(0, 1))
TINY_NECK = dict(type='ct_mmseg.DINONeck', out_channels=128,
                 hidden_channels=64, bottleneck_channels=32)
LOSS_HEADS = {ADCLR: dict(type='ct_mmseg.ADCLRHead'),
              DINO: dict(type='ct_mmseg.DINOHead')}


def tiny_vit():
    """The tiny model's backbone in eval mode (mmpretrain's backbones'
    train() returns None, so no chaining)."""
    vit = tiny_model().backbone
    vit.eval()
    return vit


def tiny_model(cls=ADCLR, **kwargs):
    torch.manual_seed(0)
    if cls is ADCLR:
        kwargs.setdefault('num_queries', 3)
    model = cls(backbone=dict(TINY_VIT), neck=dict(TINY_NECK),
                head=dict(LOSS_HEADS[cls]), **kwargs)
    model.init_weights()
    return model


def views(batch=2, num_queries=3, view=VIEW, query=PATCH, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, view, view, generator=generator)
            for _ in range(2)] + \
        [torch.randn(batch, 3, query, query, generator=generator)
         for _ in range(num_queries)]


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """One intra-op thread: on a small shared CPU, spinning OpenMP threads
    made these tiny models ~50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def message_hub():
    """CosineEMA reads max_iters from the current message hub, as in a
    run."""
    hub = MessageHub.get_current_instance()
    before = hub.get_info('max_iters')
    hub.update_info('max_iters', 10)
    yield hub
    hub.update_info('max_iters', before)


# --- the attention mask ----------------------------------------------------


def test_mask_is_one_way():
    allowed = query_attention_mask(3, 2, 2)  # [I I I | q0 q0 q1 q1]
    expected = torch.tensor([
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0, 1, 1],
        [1, 1, 1, 0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(allowed, expected)


@pytest.mark.parametrize('query_size', [PATCH, 2 * PATCH])
def test_image_tokens_unchanged_by_queries(query_size):
    vit = tiny_vit()
    x, _, *queries = views(query=query_size)
    queries = torch.stack(queries, 1)
    with torch.no_grad():
        alone, none = vit.forward_with_queries(x)
        with_queries, query_tokens = vit.forward_with_queries(x, queries)
        # ... and the parent's forward (mmpretrain's ViT) gives the same
        stock = vit(x)[-1].flatten(2).transpose(1, 2)
    assert none is None
    assert query_tokens.shape == (2, 3, (query_size // PATCH)**2, EMBED)
    torch.testing.assert_close(with_queries, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(alone[:, 1:], stock, atol=1e-5, rtol=0)


def test_query_reads_image_and_itself_only():
    vit = tiny_vit()
    x, x2, *queries = views()
    queries = torch.stack(queries, 1)
    with torch.no_grad():
        _, all_queries = vit.forward_with_queries(x, queries)
        _, first_only = vit.forward_with_queries(x, queries[:, :1])
        _, other_image = vit.forward_with_queries(x2, queries[:, :1])
    # query 0 does not see queries 1 and 2 ...
    torch.testing.assert_close(all_queries[:, :1], first_only, atol=1e-5,
                               rtol=0)
    # ... but does see the image
    assert (other_image - first_only).abs().max() > 1e-2


# --- teacher, losses ---------------------------------------------------------


def test_teacher_gets_no_gradient_and_follows_the_ema():
    model = tiny_model(teacher_momentum=0.9, teacher_momentum_end=1.0)
    model.train()
    assert not model.teacher.training  # no drop path in the teacher
    optimiser = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.5)
    inputs = views()
    losses = model.loss(inputs, None)
    assert set(losses) == {'loss_cls', 'loss_query', 'teacher_temp'}
    (losses['loss_cls'] + losses['loss_query']).backward()
    teacher_params = dict(model.teacher.module.named_parameters())
    assert all(not p.requires_grad and p.grad is None
               for p in teacher_params.values())
    student = dict(torch.nn.Sequential(model.backbone,
                                       model.neck).named_parameters())
    assert student['0.cls_token'].grad is not None
    # the first update copies the student
    for name, param in teacher_params.items():
        assert torch.equal(param, student[name]), name
    before = {k: v.clone() for k, v in teacher_params.items()}
    optimiser.step()
    model.loss(inputs, None)  # second update: cosine EMA at step 1 of 10
    share = 1 - (0.9 + (1.0 - 0.9) * (1 - math.cos(math.pi / 10)) / 2)
    for name in ('0.cls_token', '0.layers.1.attn.qkv.weight',
                 '1.mlp.0.weight'):
        expected = (1 - share) * before[name] + share * student[name]
        torch.testing.assert_close(teacher_params[name], expected)
        assert not torch.equal(teacher_params[name], student[name])


def reference_dino_loss(student, teacher, center, student_temp,
                        teacher_temp):
    """The loop of DINO's DINOLoss.forward, views given as lists."""
    student_out = list(student)
    teacher_out = [F.softmax((t - center) / teacher_temp, dim=-1)
                   for t in teacher]
    total, terms = 0, 0
    for iq, q in enumerate(teacher_out):
        for v in range(len(student_out)):
            if v == iq:
                continue
            loss = torch.sum(
                -q * F.log_softmax(student_out[v] / student_temp, dim=-1),
                dim=-1)
            total += loss.mean()
            terms += 1
    return total / terms


def test_dino_loss_matches_dinos_loop_and_moves_the_centre():
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 5, 16), torch.randn(2, 5, 16)
    loss = DINOLoss(16, student_temp=0.1, teacher_temp=0.05,
                    center_momentum=0.9)
    loss.center.normal_()
    center = loss.center.clone()
    expected = reference_dino_loss(student, teacher, center, 0.1, 0.05)
    torch.testing.assert_close(loss(student, teacher), expected)
    torch.testing.assert_close(
        loss.center, 0.9 * center + 0.1 * teacher.flatten(0, 1).mean(0))


def test_loss_finite_and_decreasing_on_cpu():
    model = tiny_model(teacher_momentum=0.9)
    model.train()
    optimiser = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3)
    inputs = views(batch=4)
    history = []
    for _ in range(25):
        losses = model.loss(inputs, None)
        total = losses['loss_cls'] + losses['loss_query']
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        history.append([losses['loss_cls'].item(),
                        losses['loss_query'].item()])
    history = torch.tensor(history)
    assert torch.isfinite(history).all()
    first, last = history[:3].mean(0), history[-3:].mean(0)
    assert (last < first).all(), history


def test_loss_values_are_pinned():
    """The algorithm's losses on fixed inputs and seed: initialisation
    (draws and their order), forward, centres, EMA teacher and one SGD step
    give these numbers to float32 precision (one CPU thread)."""
    model = tiny_model(num_local_views=1)
    model.train()
    optimiser = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.5)
    inputs = views()
    local = torch.randn(2, 3, 32, 32,
                        generator=torch.Generator().manual_seed(1))
    inputs = inputs[:2] + [local] + inputs[2:]
    history = []
    for _ in range(2):
        losses = model.loss(inputs, None)
        history.append((losses['loss_cls'].item(),
                         losses['loss_query'].item()))
        optimiser.zero_grad()
        (losses['loss_cls'] + losses['loss_query']).backward()
        optimiser.step()
    expected = [(5.9341912269592285, 3.0768580436706543),
                (2.214477062225342, 2.0994386672973633)]
    for got, want in zip(history, expected):
        assert got == pytest.approx(want, rel=1e-5, abs=0)
    dino = tiny_model(DINO)
    assert dino.loss(views(num_queries=0), None)['loss_cls'].item() == \
        pytest.approx(5.400491714477539, rel=1e-5, abs=0)


def test_neck_projects_and_head_computes_the_loss():
    """mmpretrain's roles: the neck is the projection MLP (registered in
    mmpretrain's MODELS), the head holds the loss terms and no parameter,
    and the teacher copies backbone + neck."""
    from mmpretrain.registry import MODELS
    neck = MODELS.build(dict(TINY_NECK, in_channels=EMBED))
    assert isinstance(neck, DINONeck)
    assert neck(torch.randn(5, EMBED)).shape == (5, 128)
    assert neck(torch.randn(2, 3, EMBED)).shape == (2, 3, 128)
    model = tiny_model()
    assert isinstance(model.neck, DINONeck)
    assert isinstance(model.head, ADCLRHead)
    assert not list(model.head.parameters())
    assert model.head.loss_cls.center.shape == (128, )
    assert isinstance(model.teacher.module[1], DINONeck)
    student, teacher = torch.randn(2, 3, 128), torch.randn(2, 3, 128)
    losses = model.head.loss(student, teacher, student, teacher)
    assert set(losses) == {'loss_cls', 'loss_query'}


def test_head_must_match_the_algorithm():
    with pytest.raises(TypeError, match=r"model\.head must be a "
                       r"'ct_mmseg\.ADCLRHead'"):
        ADCLR(backbone=dict(TINY_VIT), neck=dict(TINY_NECK),
              head=dict(LOSS_HEADS[DINO]), num_queries=3)
    with pytest.raises(TypeError, match='use .ct_mmseg.DINOHead.'):
        DINO(backbone=dict(TINY_VIT), neck=dict(TINY_NECK),
             head=dict(LOSS_HEADS[ADCLR]))
    with pytest.raises(ValueError, match=r'model\.head\.query_loss_weight'):
        ADCLRHead(8, query_loss_weight=-1.)


def test_dino_is_adclr_without_queries():
    model = tiny_model(DINO)
    losses = model.loss(views(num_queries=0), None)
    assert set(losses) == {'loss_cls', 'teacher_temp'}
    assert torch.isfinite(losses['loss_cls'])
    # ADCLR adds no parameters to DINO
    adclr = tiny_model()
    assert [n for n, _ in adclr.named_parameters()] == \
        [n for n, _ in model.named_parameters()]


def test_local_views_feed_the_student_cls_term_only():
    model = tiny_model(num_local_views=2)
    inputs = views()
    local = [torch.randn(2, 3, 32, 32) for _ in range(2)]
    losses = model.loss(inputs[:2] + local + inputs[2:], None)
    assert torch.isfinite(losses['loss_cls'])
    assert torch.isfinite(losses['loss_query'])


# --- the schedule hook -------------------------------------------------------


def test_teacher_temperature_schedule_and_frozen_last_layer():
    assert teacher_temperature(0, 10, 0.04, 0.07) == 0.04
    assert teacher_temperature(5, 10, 0.04, 0.07) == pytest.approx(0.055)
    assert teacher_temperature(10, 10, 0.04, 0.07) == 0.07
    model = tiny_model()
    hook = DINOScheduleHook(warmup_epochs=2, freeze_last_layer_iters=3)
    runner = SimpleNamespace(model=model, train_dataloader=[0] * 5, iter=0)
    hook.before_train(runner)
    assert hook.warmup_iters == 10
    for it, temp, frozen in ((0, 0.04, True), (5, 0.055, False),
                             (12, 0.07, False)):
        runner.iter = it
        hook.before_train_iter(runner, it)
        assert model.head.loss_cls.teacher_temp == pytest.approx(temp)
        assert model.head.loss_query.teacher_temp == pytest.approx(temp)
        assert model.neck.freeze_last_layer is frozen
    with pytest.raises(ValueError, match='warmup_iters or warmup_epochs'):
        DINOScheduleHook(warmup_iters=1, warmup_epochs=1)


def test_frozen_last_layer_gets_no_gradient():
    model = tiny_model()
    model.neck.freeze_last_layer = True
    losses = model.loss(views(), None)
    (losses['loss_cls'] + losses['loss_query']).backward()
    direction = model.neck.last_layer.parametrizations.weight.original1
    assert direction.grad is None
    assert model.neck.mlp[0].weight.grad is not None


# --- bad configs -------------------------------------------------------------


@pytest.mark.parametrize('num_queries', [0, -1])
def test_zero_queries_is_a_config_error(num_queries):
    with pytest.raises(ValueError,
                       match=r'model\.num_queries.*ct_mmseg\.DINO'):
        tiny_model(num_queries=num_queries)


def test_query_larger_than_view_is_an_error():
    model = tiny_model()
    with pytest.raises(ValueError, match='larger than the global views'):
        model.loss(views(view=32, query=48), None)


def test_query_not_a_patch_multiple_is_an_error():
    with pytest.raises(ValueError, match='multiple of the patch size 16'):
        tiny_model().loss(views(query=24), None)


def test_view_count_mismatch_names_the_keys():
    with pytest.raises(ValueError, match=r'model\.num_queries=3.*MultiView'):
        tiny_model().loss(views(num_queries=2), None)


def test_backbone_must_be_adclr_vit():
    with pytest.raises(TypeError, match="ct_mmseg.ADCLRViT"):
        ADCLR(backbone=dict(TINY_VIT, type='VisionTransformer'),
              neck=dict(TINY_NECK), head=dict(LOSS_HEADS[ADCLR]))


# --- the handoff to MMSeg's ViT ---------------------------------------------


def mmseg_vit(**kwargs):
    from mmseg.models.backbones import VisionTransformer
    cfg = dict(img_size=(VIEW, VIEW), patch_size=PATCH, embed_dims=EMBED,
               num_layers=LAYERS, num_heads=HEADS, mlp_ratio=4,
               out_indices=(0, 1), norm_cfg=dict(type='LN', eps=1e-6),
               patch_bias=True, final_norm=True)
    cfg.update(kwargs)
    vit = VisionTransformer(**cfg)
    vit.eval()
    return vit


def test_converted_backbone_fills_mmseg_vit_and_computes_the_same():
    model = tiny_model()
    model.eval()
    state = backbone_state_dict(
        {f'teacher.module.0.{k}': v
         for k, v in model.backbone.state_dict().items()})
    converted = to_mmseg_vit(state)
    target = mmseg_vit()
    check_backbone_keys(target, converted)
    missing, unexpected = target.load_state_dict(converted, strict=True)
    assert not missing and not unexpected
    x = torch.randn(2, 3, VIEW, VIEW)
    with torch.no_grad():
        ours, theirs = model.backbone(x), target(x)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_converted_backbone_agrees_after_mmseg_resizes_pos_embed(tmp_path):
    """At a crop other than the pretraining size: MMSeg resizes the position
    embedding when it loads the checkpoint (64 -> 128 px: 17 -> 65 tokens),
    mmpretrain's ViT resizes it in its forward; the features still agree."""
    model = tiny_model()
    model.eval()
    path = str(tmp_path / 'vit.pth')
    torch.save(dict(state_dict=to_mmseg_vit(model.backbone.state_dict())),
               path)
    target = mmseg_vit(img_size=(2 * VIEW, 2 * VIEW),
                       init_cfg=dict(type='Pretrained', checkpoint=path))
    target.init_weights()
    target.eval()
    assert target.pos_embed.shape[1] == 1 + (2 * VIEW // PATCH)**2
    x = torch.randn(2, 3, 2 * VIEW, 2 * VIEW)
    with torch.no_grad():
        ours, theirs = model.backbone(x), target(x)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_handoff_fails_loudly():
    model = tiny_model()
    raw = {f'backbone.{k}': v for k, v in model.backbone.state_dict().items()}
    with pytest.raises(BackboneHandoffError, match='whole ADCLR model'):
        check_backbone_keys(mmseg_vit(), raw)
    with pytest.raises(BackboneHandoffError, match='mmpretrain ViT names'):
        check_backbone_keys(mmseg_vit(), backbone_state_dict(raw, 'student'))
    with pytest.raises(BackboneHandoffError,
                       match='patch_bias=True and final_norm=True'):
        check_backbone_keys(mmseg_vit(patch_bias=False, final_norm=False),
                            to_mmseg_vit(backbone_state_dict(raw, 'student')))
    with pytest.raises(BackboneHandoffError, match="'teacher.module.0.'"):
        backbone_state_dict(raw, 'teacher')


def test_check_hook_refuses_an_unconverted_checkpoint(tmp_path):
    model = tiny_model()
    path = str(tmp_path / 'adclr.pth')
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in
                                model.backbone.state_dict().items()}), path)
    backbone = mmseg_vit(init_cfg=dict(type='Pretrained', checkpoint=path))
    backbone.init_weights()  # MMSeg's loader: non-strict, goes on silently
    runner = SimpleNamespace(model=SimpleNamespace(backbone=backbone),
                             _resume=False, _load_from=None,
                             logger=SimpleNamespace(info=print))
    with pytest.raises(BackboneHandoffError, match='0 missing|missing keys'):
        CheckPretrainedBackboneHook().before_train(runner)
    # converted, it passes: every tensor is there and was loaded
    good = str(tmp_path / 'vit.pth')
    torch.save(dict(state_dict=to_mmseg_vit(
        {k: v for k, v in model.backbone.state_dict().items()})), good)
    backbone = mmseg_vit(init_cfg=dict(type='Pretrained', checkpoint=good))
    backbone.init_weights()
    runner.model = SimpleNamespace(backbone=backbone)
    CheckPretrainedBackboneHook().before_train(runner)



def test_colour_jitter_hue_shift_works_on_numpy2():
    import mmcv
    import numpy as np
    from ct_mmseg.adclr.compat import ORIGINAL_ADJUST_HUE
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8)
    for backend in ('cv2', 'pillow'):
        # negative shifts (half of DINO's ColorJitter draws) do not crash
        out = mmcv.adjust_hue(image, -0.1, backend=backend)
        assert out.shape == image.shape and out.dtype == np.uint8
        # positive ones give mmcv's own result
        np.testing.assert_array_equal(
            mmcv.adjust_hue(image, 0.1, backend=backend),
            ORIGINAL_ADJUST_HUE(image, 0.1, backend=backend))


# --- the k-NN evaluation of frozen tokens ------------------------------------


def test_patch_labels_need_a_majority_class():
    from ct_mmseg.adclr.knn_eval import patch_labels
    labels = torch.full((4, 8), 255)
    labels[:, :4] = 1  # left patch: all class 1
    labels[:3, 4:] = 2  # right patch: 12 of 16 pixels class 2, rest ignored
    assert patch_labels(labels, 4, 3, 0.5).tolist() == [1, 2]
    assert patch_labels(labels, 4, 3, 0.8).tolist() == [1, 255]


def test_knn_linear_classifier_and_scores_on_separable_tokens():
    from ct_mmseg.adclr.knn_eval import (knn_predict,
                                         linear_classifier_predict, scores)
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=generator) * 5
    labels = torch.arange(3).repeat(20)
    tokens = centres[labels] + torch.randn(60, 8, generator=generator)
    for predict in (knn_predict, linear_classifier_predict):
        prediction = predict(tokens[:30], labels[:30], tokens[30:], 3)
        assert scores(prediction, labels[30:], 3) == dict(acc=100., miou=100.)
    result = scores(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]), 3)
    assert result['acc'] == 75.
    assert result['miou'] == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)


def test_knn_and_linear_eval_of_every_layer():
    """The whole evaluation on two small labelled images, with the tiny
    pretraining config's ViT at random init (no checkpoint)."""
    import os.path as osp

    import numpy as np
    from ct_mmseg.adclr.knn_eval import build_frozen_vit, knn_and_linear_eval
    config = osp.join(REPO, 'configs', 'adclr',
                      'adclr_vit-tiny-p16_1xb16-300i_unlabelled-64px.py')
    vit = build_frozen_vit(config, seed=0)
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(2):
        mask = np.zeros((64, 96), np.uint8)
        mask[:, 48:] = 1
        image = rng.integers(0, 256, (64, 96, 3), np.uint8)
        image[:, 48:, 0] = 255  # class 1 is red
        pairs.append((image, mask))
    rows = knn_and_linear_eval(vit, pairs[:1], pairs[1:], num_classes=2,
                               short_side=64, k=3)
    assert [row['layer'] for row in rows] == [0, 1, 2, 3]
    assert rows[0]['train_patches'] == rows[0]['test_patches'] == 24
    for row in rows:
        for key in ('knn_acc', 'knn_miou', 'linear_acc', 'linear_miou'):
            assert 0. <= row[key] <= 100.


def test_probe_tokens_cli_on_a_tiny_release(tmp_path):
    """tools/probe_tokens.py (knn_eval's command line) in a subprocess on
    two tiny Dubai tiles: a random-init run, one row per layer in --out."""
    import json
    import os.path as osp
    import sys

    import numpy as np
    from PIL import Image

    from ct_mmseg.datasets.dubai_aerial import PALETTE
    rng = np.random.default_rng(0)
    for tile in (1, 3):
        for kind in ('images', 'masks'):
            (tmp_path / 'release' / f'Tile {tile}' / kind).mkdir(parents=True)
        mask = np.zeros((64, 96, 3), np.uint8)
        mask[:] = PALETTE[0]
        mask[:, 48:] = PALETTE[1]
        image = rng.integers(0, 256, (64, 96, 3), np.uint8)
        folder = tmp_path / 'release' / f'Tile {tile}'
        Image.fromarray(image).save(folder / 'images' / 'a.jpg', quality=100)
        Image.fromarray(mask).save(folder / 'masks' / 'a.png')
    out = tmp_path / 'probe.json'
    log = run([sys.executable, osp.join(REPO, 'tools', 'probe_tokens.py'),
               osp.join(REPO, 'configs', 'adclr',
                        'adclr_vit-tiny-p16_1xb16-300i_unlabelled-64px.py'),
               '--run', 'random=', '--dubai-root', tmp_path / 'release',
               '--train-tiles', 1, '--test-tiles', 3, '--short-side', 64,
               '--k', 3, '--out', out], cwd=tmp_path)
    assert '1 train / 1 test images' in log
    rows = json.loads(out.read_text())['rows']
    assert [row['layer'] for row in rows] == [0, 1, 2, 3]
    assert all(row['run'] == 'random' and row['checkpoint'] is None
               for row in rows)
