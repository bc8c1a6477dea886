"""ContrastiveTransformerHook: CT statistics in the MMEngine log.

The hook also makes every MMEngine runner import ct_mmseg (see below).
"""
from typing import List, NamedTuple, Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ..models import ContrastiveTransformerHead
from ..models.step_stats import StepStats
from ..registry import HOOKS


class _Sums(NamedTuple):
    """Sums over the steps of an interval, per stage and class: (S, K)
    float tensors on the device until a flush."""
    positives: torch.Tensor
    negatives: torch.Tensor
    pairs: torch.Tensor
    cos_pos: torch.Tensor
    cos_neg: torch.Tensor
    had_pos_pairs: torch.Tensor  # steps with same-class pairs
    had_neg_pairs: torch.Tensor  # steps with different-class pairs
    no_pos: torch.Tensor  # steps where a present class had no positive
    gained_pos: torch.Tensor  # positives made by the purity threshold
    memory_fill: torch.Tensor  # entries the memory held after the step

    @classmethod
    def of_step(cls, stats: StepStats, present: torch.Tensor) -> '_Sums':
        """One step's figures; ``present``: bool (K,)."""
        return cls(
            positives=stats.positives, negatives=stats.negatives,
            pairs=stats.pairs, cos_pos=stats.cos_pos, cos_neg=stats.cos_neg,
            # the cosine means count only in steps that had such pairs
            had_pos_pairs=(stats.positive_pairs > 0).float(),
            had_neg_pairs=(stats.pairs > stats.positive_pairs).float(),
            no_pos=((stats.positives == 0) & present.unsqueeze(0)).float(),
            gained_pos=stats.gained_positives,
            memory_fill=stats.memory_fill)

    def __add__(self, other: '_Sums') -> '_Sums':
        return _Sums(*(a + b for a, b in zip(self, other)))

    def to_host(self) -> '_Sums':
        """One device-to-host copy for all fields."""
        return _Sums(*torch.stack(list(self)).cpu().unbind(0))


@HOOKS.register_module()
class ContrastiveTransformerHook(Hook):
    """Logs what CT's sampler picked, per stage; its scoped name imports us.

    **Statistics.** Each training step, every
    :class:`ContrastiveTransformerHead` keeps device tensors with what it saw.
    This hook adds them up on the device (no host sync), and every
    ``interval`` iterations it copies them to the host once. It then writes
    these means over the interval into MMEngine's message hub as ``train/``
    scalars, so the text log, ``vis_data/scalars.json`` and TensorBoard all
    get them with no extra code. For stage ``i``:

    - ``ct_s{i}/pos`` and ``ct_s{i}/neg``: positive and negative patches found
      per step (all classes);
    - ``ct_s{i}/pairs``: pairs the loss used after hard mining, per step;
    - ``ct_s{i}/cos_pos`` and ``ct_s{i}/cos_neg``: mean cosine similarity of
      the same-class and different-class pairs used;
    - ``ct_s{i}/no_pos``: the fraction of (step, class present in the GT)
      where the class had no positive patch at this stage. Small classes such
      as cars at the coarse stages show up here;
    - ``ct_s{i}/gained_pos``: positives per step that only the head's
      ``positive_purity`` < 1 made (0 at the paper's pure patches);
    - ``ct_s{i}/memory_fill``: entries the cross-image memory held after the
      step (all classes; 0 without ``memory_size``).

    With ``per_class=True``, the same figures are also written per class as
    ``ct_s{i}/{class}/{name}``, ``name`` one of ``pos``, ``neg``, ``pairs``,
    ``cos_pos``, ``cos_neg``, ``no_pos``, ``gained_pos``, ``memory_fill``.

    Over all stages:

    - ``ct/over_clip``: the fraction of steps whose contrastive total was
      above ``clip_value``. With ``clip_mode='clamp'`` these are the steps in
      which CT sent no gradient at all; with ``'scale'`` its gradient was
      scaled down.
    - with the head's ``grad_stats=True``: ``ct/grad_norm_ct`` and
      ``ct/grad_norm_seg``, the norms of the gradient that CT and that the
      other losses send to the backbone's stage outputs (all stages
      together), and ``ct/grad_share`` = ct / (ct + seg), means over steps.

    **Why it is in the CT fragment.** The fragment lists this hook under the
    scoped name ``'ct_mmseg.ContrastiveTransformerHook'``. Resolving that name
    imports ct_mmseg in any runner, including MMSeg's ``tools/test.py``, which
    ignores ``runner_type``. So ct_mmseg's weights-only checkpoint loader is in
    place before a checkpoint is read.

    Args:
        interval (int, optional): log every ``interval`` training iterations.
            Default None: the LoggerHook's interval.
        stats (bool): log the statistics. Default True.
        per_class (bool): also log per-class figures. Default False.
    """

    priority = 'NORMAL'  # after_train_iter before LoggerHook (BELOW_NORMAL)

    def __init__(self, interval: Optional[int] = None, stats: bool = True,
                 per_class: bool = False):
        self.interval = interval
        self.stats = stats
        self.per_class = per_class
        self._sums: Optional[_Sums] = None
        # (K,): steps in which each class was present
        self._present: Optional[torch.Tensor] = None
        # (4,): sums over steps of over_clip, grad norm ct, grad norm seg,
        # grad share; on the device until a flush
        self._global: Optional[torch.Tensor] = None
        self._steps = 0
        self._heads: List[ContrastiveTransformerHead] = []
        self._class_names: Sequence[str] = ()

    def before_train(self, runner) -> None:
        self._heads = _ct_heads(unwrap(runner.model))
        if not self._heads:
            cfg = getattr(runner, 'cfg', None) or {}
            if cfg.get('ct_head') is not None:
                # The config asks for CT but the runner did not add it (a
                # script calling Runner.from_cfg ignores runner_type):
                # training on would silently be the baseline.
                raise RuntimeError(
                    'The config sets `ct_head` but the model has no '
                    'ContrastiveTransformerHead: build the runner with '
                    'RUNNERS.build(cfg) (it honours '
                    "runner_type='ct_mmseg.CTRunner'), or call "
                    'ct_mmseg.config_injection.add_ct_to_config(cfg) first')
            print_log('ContrastiveTransformerHook: the model has no '
                      'ContrastiveTransformerHead, CT is OFF',
                      logger='current', level=30)
            return
        if self.interval is None:
            logger_hook = next((h for h in runner.hooks
                                if type(h).__name__ == 'LoggerHook'), None)
            self.interval = getattr(logger_hook, 'interval', 50)
        dataset = getattr(runner.train_dataloader, 'dataset', None)
        self._class_names = tuple(
            getattr(dataset, 'metainfo', {}).get('classes', ()) or ())
        for head in self._heads:
            loss = head.loss_decode
            print_log(
                'Contrastive Transformer: stages in_index='
                f'{list(head.in_index)} channels={list(head.in_channels)} '
                f'strides={list(head.strides)} classes={head.num_classes} '
                f'ignore_index={head.ignore_index} mode={loss.mode} '
                f'clip={loss.clip_value} ({loss.clip_mode}) '
                f'num_samples={head.num_samples}', logger='current')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if not (self.stats and self._heads):
            return
        head = self._heads[0]
        stats, present = head.step_stats, head.step_present
        if stats is None:
            return
        step = _Sums.of_step(stats, present)
        self._sums = step if self._sums is None else self._sums + step
        self._present = present.float() + (
            0 if self._present is None else self._present)
        self._global = self._global_step_figures(head) + (
            0 if self._global is None else self._global)
        self._steps += 1
        if self.every_n_train_iters(runner, self.interval) or \
                self.is_last_train_iter(runner):
            self._flush(runner)

    @staticmethod
    def _global_step_figures(head) -> torch.Tensor:
        """(4,) over_clip, grad norm ct, grad norm seg, share (NaN: none)."""
        device = head.step_stats.positives.device
        over = head.loss_decode.last_over_clip
        over = (torch.tensor(float('nan'), device=device) if over is None
                else over.float())
        norms = head.step_grad_norms
        if norms is None:
            grads = torch.full((3,), float('nan'), device=device)
        else:
            ct, seg = norms.sum(0).sqrt()
            grads = torch.stack([ct, seg, ct / (ct + seg).clamp(min=1e-30)])
        return torch.cat([over.reshape(1), grads])

    def _flush(self, runner) -> None:
        # one host transfer per interval (per tensor kind)
        sums = self._sums.to_host()
        present, global_sums = self._present.cpu(), self._global.cpu()
        steps = self._steps
        self._sums = self._present = self._global = None
        self._steps = 0
        hub = runner.message_hub
        for key, value in zip(('over_clip', 'grad_norm_ct', 'grad_norm_seg',
                               'grad_share'), global_sums.tolist()):
            if value == value:  # NaN: not measured (no clip / no grad_stats)
                hub.update_scalar(f'train/ct/{key}', value / steps)
        for stage in range(sums.positives.shape[0]):
            figures = _figures(_Sums(*(t[stage] for t in sums)), present,
                               steps, lambda t: t.sum().item())
            for key, value in figures.items():
                hub.update_scalar(f'train/ct_s{stage}/{key}', value)
            if not self.per_class:
                continue
            for k in range(sums.positives.shape[1]):
                name = self._class_names[k] \
                    if k < len(self._class_names) else k
                figures = _figures(_Sums(*(t[stage, k] for t in sums)),
                                   present[k], steps, lambda t: t.item())
                for key, value in figures.items():
                    hub.update_scalar(f'train/ct_s{stage}/{name}/{key}',
                                      value)


def _figures(sums: _Sums, present: torch.Tensor, steps: int,
             total) -> dict:
    """The logged means of one stage (over classes) or one (stage, class):
    counts per step; cosines over the steps (and classes) that had such
    pairs; ``no_pos`` over the steps (and classes) present. ``total``
    reduces a tensor of ``sums`` to a number."""
    return dict(
        pos=total(sums.positives) / steps,
        neg=total(sums.negatives) / steps,
        pairs=total(sums.pairs) / steps,
        cos_pos=total(sums.cos_pos) / max(total(sums.had_pos_pairs), 1),
        cos_neg=total(sums.cos_neg) / max(total(sums.had_neg_pairs), 1),
        no_pos=total(sums.no_pos) / max(total(present), 1),
        gained_pos=total(sums.gained_pos) / steps,
        memory_fill=total(sums.memory_fill) / steps)


def unwrap(model):
    """The model inside a (distributed) wrapper."""
    return model.module if hasattr(model, 'module') else model


def _ct_heads(model) -> List[ContrastiveTransformerHead]:
    return [m for m in model.modules()
            if isinstance(m, ContrastiveTransformerHead)]
