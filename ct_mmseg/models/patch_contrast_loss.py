"""PatchContrastLoss: the MMSeg loss module of Contrastive Transformer."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from mmseg.registry import MODELS

from .training_state import training_iteration
from ..core import PAIR_SELECTIONS, cl_class_losses, infonce_class_losses
from ..core.losses import CL_FORMS, ClassLosses, MemoryPartners
from ..core.reduction import CLIP_MODES, clip_stage_losses, stage_loss

LOSS_MODES = ('cl', 'infonce')


@MODELS.register_module()
class PatchContrastLoss(nn.Module):
    """Contrastive loss between mined patch embeddings, per class.

    It takes the randomly drawn positive and negative candidates of one stage
    (the head draws them from the GT), mines hard pairs by cosine similarity
    and returns one loss per class. :meth:`clip` then bounds the total over
    stages as the paper does ("we clip the contrastive loss to 1.0").

    Args:
        mode (str): 'cl' (the paper's CL, default) or 'infonce'.
        temperature (float): InfoNCE temperature. Default 0.1 (authors).
        label_smoothing (float): CL label smoothing. Default 0.1 (paper).
        cl_form (str): 'soft_ce' (default: the authors' 2-way soft CE over
            [1 - s, s], i.e. BCE on sigmoid(cos)) or 'bce' (BCE on s, the
            paper's wording). See :func:`ct_mmseg.core.cl_pair_loss`.
        hard_fraction (float): fraction of pairs kept by hard mining.
            Default 0.5 (paper: "take the top 50%").
        pair_selection (str): which CL pairs that fraction keeps.
            'hardest' (default, the paper's text): the most similar negative
            pairs and the least similar positive pairs. 'random': the
            authors' code as shipped, whose sort runs over a size-1 dimension
            and so keeps the first pairs of the random draw. InfoNCE always
            keeps the hardest pairs (the authors' InfoNCE sorts correctly).
        min_positives (int, optional): a class with fewer positive tokens at a
            stage is skipped there. Default None: 5 for 'cl', 10 for
            'infonce' (authors).
        min_negatives (int, optional): same for negatives (5 / 10).
        min_positives_for_pairs (int): CL builds positive pairs only from
            this many positives. Default 10 (authors).
        clip_value (float, optional): bound of the total contrastive loss
            (before ``loss_weight``). Default 1.0 (paper); None disables.
        clip_mode (str): 'scale' (default) rescales the total down to
            ``clip_value`` and keeps a gradient, of size
            ``clip_value / total`` times the unclipped one; 'clamp' is the
            authors' hard clamp: above the clip the loss is the constant
            ``clip_value`` and its gradient is exactly zero.
        loss_weight (float): multiplies the clipped loss. Default 1.0.
        warmup_iters (int): ramp the weight linearly from 0 to
            ``loss_weight`` over the first ``warmup_iters`` training
            iterations (MMEngine's iteration, so a resumed run continues the
            ramp). Default 0: no warm-up (the paper has none). Outside a
            training loop the full weight applies.
        loss_name (str): log name prefix; must start with 'loss_' so MMEngine
            adds it to the total. Default 'loss_ct'.
    """

    def __init__(self,
                 mode: str = 'cl',
                 temperature: float = 0.1,
                 label_smoothing: float = 0.1,
                 cl_form: str = 'soft_ce',
                 hard_fraction: float = 0.5,
                 pair_selection: str = 'hardest',
                 min_positives: Optional[int] = None,
                 min_negatives: Optional[int] = None,
                 min_positives_for_pairs: int = 10,
                 clip_value: Optional[float] = 1.0,
                 clip_mode: str = 'scale',
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0,
                 loss_name: str = 'loss_ct'):
        super().__init__()
        _check_choice('mode', mode, LOSS_MODES)
        _check_choice('cl_form', cl_form, CL_FORMS)
        _check_choice('clip_mode', clip_mode, CLIP_MODES)
        _check_choice('pair_selection', pair_selection, PAIR_SELECTIONS)
        if pair_selection != 'hardest' and mode != 'cl':
            raise ValueError('PatchContrastLoss: loss_decode.pair_selection='
                             f"{pair_selection!r} applies to mode='cl' only "
                             "(InfoNCE always keeps the hardest pairs)")
        if not temperature > 0:
            raise ValueError('PatchContrastLoss: loss_decode.temperature '
                             f'must be > 0, got {temperature}')
        if not 0 <= label_smoothing < 1:
            raise ValueError('PatchContrastLoss: loss_decode.label_smoothing '
                             f'must be in [0, 1), got {label_smoothing}')
        if not 0 < hard_fraction <= 1:
            raise ValueError('PatchContrastLoss: loss_decode.hard_fraction '
                             f'must be in (0, 1], got {hard_fraction}')
        if clip_value is not None and not clip_value > 0:
            raise ValueError('PatchContrastLoss: loss_decode.clip_value must '
                             f'be > 0 or None, got {clip_value}')
        if not loss_name.startswith('loss_'):
            raise ValueError('PatchContrastLoss: loss_decode.loss_name must '
                             "start with 'loss_' to count in the total, got "
                             f'{loss_name!r}')
        default_min = 5 if mode == 'cl' else 10
        self.mode = mode
        self.temperature = float(temperature)
        self.label_smoothing = float(label_smoothing)
        self.cl_form = cl_form
        self.hard_fraction = float(hard_fraction)
        self.pair_selection = pair_selection
        self.min_positives = _at_least(
            'min_positives',
            default_min if min_positives is None else min_positives,
            2 if mode == 'infonce' else 1)
        self.min_negatives = _at_least(
            'min_negatives',
            default_min if min_negatives is None else min_negatives, 1)
        self.min_positives_for_pairs = _at_least('min_positives_for_pairs',
                                                 min_positives_for_pairs, 2)
        self.clip_value = clip_value
        self.clip_mode = clip_mode
        self.loss_weight = float(loss_weight)
        self.warmup_iters = _at_least('warmup_iters', warmup_iters, 0)
        self._loss_name = loss_name
        # bool scalar of the last clip() call: the total exceeded clip_value
        # (with clip_mode='clamp': CT's gradient was zero). Read by the hook.
        self.last_over_clip: Optional[torch.Tensor] = None

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, positives: torch.Tensor, num_positives: torch.Tensor,
                negatives: torch.Tensor, num_negatives: torch.Tensor,
                memory: Optional[MemoryPartners] = None) -> ClassLosses:
        """Per-class loss of one stage.

        Args:
            positives (Tensor): (K, M, D) L2-normalised positive embeddings,
                valid slots first.
            num_positives (Tensor): long (K,), valid positive slots.
            negatives (Tensor): (K, M, D) L2-normalised negative embeddings.
            num_negatives (Tensor): long (K,), valid negative slots.
            memory (MemoryPartners, optional): entries of the cross-image
                memory, extra partners of the positives (see
                :func:`~ct_mmseg.core.cl_class_losses`).

        Returns:
            ClassLosses: loss (K,), active (K,), pairs (K,).
        """
        positives, negatives = positives.float(), negatives.float()
        if self.mode == 'cl':
            return cl_class_losses(
                positives, num_positives, negatives, num_negatives,
                hard_fraction=self.hard_fraction,
                label_smoothing=self.label_smoothing,
                min_positives=self.min_positives,
                min_negatives=self.min_negatives,
                min_positives_for_pairs=self.min_positives_for_pairs,
                form=self.cl_form, pair_selection=self.pair_selection,
                memory=memory)
        return infonce_class_losses(
            positives, num_positives, negatives, num_negatives,
            temperature=self.temperature, hard_fraction=self.hard_fraction,
            min_positives=self.min_positives, min_negatives=self.min_negatives,
            memory=memory)

    def reduce(self, class_losses: Sequence[torch.Tensor],
               stage_weights: Sequence[float],
               num_present: int) -> List[torch.Tensor]:
        """The stage losses that are optimised, from each stage's per-class
        losses: ``w_s * sum_k L_{s,k} / (S * K_present)`` per stage
        (:func:`~ct_mmseg.core.stage_loss`), then :meth:`clip`.

        Args:
            class_losses (Sequence[Tensor]): per stage, float (K',).
            stage_weights (Sequence[float]): w_s per stage.
            num_present (int): classes present in the batch GT.

        Returns:
            list[Tensor]: one scalar per stage.
        """
        num_stages = len(class_losses)
        return self.clip([
            stage_loss(losses, weight, num_stages, num_present)
            for losses, weight in zip(class_losses, stage_weights)])

    def clip(self, stage_losses: List[torch.Tensor]) -> List[torch.Tensor]:
        """Clip the total of the stage losses and apply ``loss_weight``
        (ramped over ``warmup_iters``); see
        :func:`~ct_mmseg.core.clip_stage_losses`. Records in
        :attr:`last_over_clip` whether the total was above the clip.

        Args:
            stage_losses (list[Tensor]): scalar loss of each stage.

        Returns:
            list[Tensor]: scalars, same length.
        """
        weight = self.current_weight()
        clipped, over = clip_stage_losses(stage_losses, self.clip_value,
                                          self.clip_mode)
        if over is not None:
            self.last_over_clip = over
        return [loss * weight for loss in clipped]

    def draw_width(self, most_positives: int, bound: int) -> int:
        """How many candidates of each kind a stage must draw per class.

        The losses pair positive i with negative i, so negatives beyond the
        largest positive set are never used; a class needs at least
        ``min_negatives`` negatives to count; ``bound`` is the head's
        ``num_samples``.

        Args:
            most_positives (int): the most positive tokens any class has at
                the stage.
            bound (int): the upper bound.

        Returns:
            int: the width of the draws.
        """
        return min(bound, max(most_positives, self.min_negatives))

    def current_weight(self) -> float:
        """``loss_weight``, ramped up over ``warmup_iters`` iterations."""
        step = training_iteration() if self.warmup_iters else None
        if step is None:
            return self.loss_weight
        return self.loss_weight * min(1.0, (step + 1) / self.warmup_iters)


def _check_choice(key, value, choices):
    if value not in choices:
        raise ValueError(f'PatchContrastLoss: loss_decode.{key} must be one '
                         f'of {choices}, got {value!r}')


def _at_least(key, value, minimum):
    if int(value) != value or value < minimum:
        raise ValueError(f'PatchContrastLoss: loss_decode.{key} must be an '
                         f'integer >= {minimum}, got {value!r}')
    return int(value)
