"""ContrastiveTransformerHead: the auxiliary head that adds CT to a segmentor."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from mmengine.dist import get_rank
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, SampleList
from torch import Tensor

from .gradient_share import track_gradient_share
from .head_args import check_options, check_stage_args
from .patch_memory import PatchMemory
from .rng import global_rng_untouched, mix_seed
from .step_shapes import step_shapes_to_host
from .step_stats import StepStats
from .training_state import training_iteration
from ..core import (PatchMasks, check_labels, gather_tokens, mlp_linears,
                    project_tokens, projects_every_token, sample_candidates,
                    stage_classes_present, stage_labels, stage_patch_masks,
                    stage_positive_counts)
from ..core.cross_rank import (batch_offset, gather_draws, sum_over_ranks,
                               world)
from ..core.image_keys import (class_keys, draw_by_keys, image_uniforms,
                               split_stages)
from ..core.purity import (majority_positive_counts, majority_positive_masks,
                           stage_majority_labels)


def build_projector(in_channels: int, channels: int, num_layers: int) -> nn.Module:
    """Per-token projection head: Linear(C -> D) [-> GELU -> Linear(D -> D)]*.

    With ``num_layers=2`` this is the authors' head (Linear, GELU, Linear).
    """
    layers: List[nn.Module] = [nn.Linear(in_channels, channels)]
    for _ in range(num_layers - 1):
        layers += [nn.GELU(), nn.Linear(channels, channels)]
    return nn.Sequential(*layers)


@MODELS.register_module()
class ContrastiveTransformerHead(BaseDecodeHead):
    """Contrastive Transformer (CT) as an MMSeg auxiliary decode head.

    During training it takes the token maps of the backbone stages, projects
    each stage with its own small projection head, cuts the GT mask into
    patches of that stage's stride, draws positive and negative tokens per
    class, and returns the contrastive loss of each stage. It is never used
    at inference: MMSeg's segmentors do not call auxiliary heads in
    ``predict``, so a CT model has exactly the baseline's test-time cost.

    Args:
        in_channels (Sequence[int]): channels C_i of each used stage.
        num_classes (int): K, the segmentation classes.
        strides (Sequence[int]): stride (patch size, in pixels) of each used
            stage. Default (4, 8, 16, 32): Swin, PoolFormer, MiT, ConvNeXt.
        in_index (Sequence[int], optional): which backbone outputs to use.
            Default: the first ``len(in_channels)`` outputs.
        proj_channels (int): width D of the projection heads. Default 128.
        proj_num_layers (int): linear layers per projection head. Default 2.
        stage_weights (Sequence[float], optional): weight of each stage's
            loss. Default all 1 (authors).
        num_samples (int): bound M on the positive and on the negative tokens
            drawn per class and stage, so at most M pairs per class and stage;
            keeps memory flat whatever the image size. Default 2000 (the
            authors' InfoNCE bound; their CL is unbounded).
        ignore_only_negatives (bool): let patches made only of ignore pixels
            be negatives. Default False (see ``ct_mmseg.core.patch_labels``).
        seed (int, optional): seed of the head's private generator for the
            candidate draws. Default None: the seed MMEngine gave torch
            (``randomness.seed``). During training the global RNG is never
            drawn from (see :meth:`_get_generator`).
        collect_stats (bool): keep per-stage, per-class statistics of the last
            step in :attr:`step_stats` (device tensors, no host sync) for
            :class:`~ct_mmseg.hooks.ContrastiveTransformerHook` to log.
            Default True.
        checkpoint_projection (bool): keep no hidden activation of the
            projection heads for backward and recompute them there (less
            memory: one (N, D) tensor per hidden layer and stage; one more
            product per hidden layer, the last layer is never recomputed;
            same values). Default True.
        grad_stats (bool): also measure, in each backward pass, the norm of
            the gradient CT sends to the backbone's stage outputs and the norm
            of the rest (the segmentation losses), kept in
            :attr:`step_grad_norms` for the hook (``ct/grad_share``). Costs a
            few elementwise passes over the stage outputs. Default False.
        memory_size (int): L, entries of a cross-image memory per stage and
            class: detached projected positives of earlier iterations, used
            by both losses as extra positive and negative partners of the
            batch's positives (see :class:`PatchMemory`). Saved in
            checkpoints. Default 0: no memory (the paper).
        memory_per_step (int): entries each class adds to its memory per
            stage and step. Default 64.
        positive_purity (float): tau in (0.5, 1]. A token is a positive of
            class c when at least tau of its block's valid pixels are c.
            Default 1.0: the paper's pure patches (every pixel c, no ignore
            pixel). Negatives stay blocks with no pixel of c.
        cross_rank (bool): under data parallelism, contrast the drawn
            embeddings of every rank: each rank draws from its own images by
            image-tied keys, the draws are gathered and merged, and the loss
            equals a single process's on the whole batch (gradient to the
            local embeddings only; see :mod:`ct_mmseg.core.cross_rank`).
            Default False (the paper: each rank contrasts its own batch).
        ignore_index (int): GT label to ignore. Default 255. A class id is
            allowed (e.g. 5 to ignore Potsdam's clutter, as the decode
            head's loss then does): CT then treats it as no class.
        loss_decode (dict): config of :class:`PatchContrastLoss`.
        init_cfg (dict, optional): MMEngine init config.

    The loss of a stage is ``w_s * sum_k L_{s,k} / (S * K_present)`` with S the
    number of stages and K_present the classes present in the batch GT (the
    authors' aggregation); the clip then bounds the sum over stages. The
    loss module owns that reduction (:meth:`PatchContrastLoss.reduce`,
    :mod:`ct_mmseg.core.reduction`).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 num_classes: int,
                 strides: Sequence[int] = (4, 8, 16, 32),
                 in_index: Optional[Sequence[int]] = None,
                 proj_channels: int = 128,
                 proj_num_layers: int = 2,
                 stage_weights: Optional[Sequence[float]] = None,
                 num_samples: int = 2000,
                 ignore_only_negatives: bool = False,
                 seed: Optional[int] = None,
                 collect_stats: bool = True,
                 grad_stats: bool = False,
                 checkpoint_projection: bool = True,
                 memory_size: int = 0,
                 memory_per_step: int = 64,
                 positive_purity: float = 1.0,
                 cross_rank: bool = False,
                 ignore_index: int = 255,
                 loss_decode: ConfigType = dict(type='PatchContrastLoss'),
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs):
        in_channels, strides, in_index, stage_weights = check_stage_args(
            in_channels, strides, in_index, stage_weights)
        memory_size, memory_per_step, positive_purity, cross_rank = \
            check_options(memory_size, memory_per_step, positive_purity,
                          cross_rank)
        for key, value, low in (('proj_channels', proj_channels, 1),
                                ('proj_num_layers', proj_num_layers, 1),
                                ('num_samples', num_samples, 2),
                                ('num_classes', num_classes, 1)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f'ContrastiveTransformerHead: {key} must be '
                                 f'an integer >= {low}, got {value!r}')
        if not isinstance(loss_decode, dict):
            raise TypeError('ContrastiveTransformerHead: loss_decode must be '
                            'one PatchContrastLoss config (a dict), got '
                            f'{loss_decode!r} ({type(loss_decode).__name__})')
        if init_cfg is None:
            init_cfg = dict(type='TruncNormal', layer='Linear', std=0.02)
        # Building draws initial weights from the global RNG (BaseDecodeHead's
        # conv_seg, the projection heads): fork it, so that adding CT to a
        # model leaves every other module's initial weights as they were.
        with global_rng_untouched():
            super().__init__(
                in_channels=list(in_channels),
                channels=proj_channels,
                num_classes=num_classes,
                in_index=list(in_index),
                input_transform='multiple_select',
                dropout_ratio=0,
                ignore_index=ignore_index,
                loss_decode=loss_decode,
                init_cfg=init_cfg,
                **kwargs)
        if not hasattr(self.loss_decode, 'clip'):
            raise TypeError('ContrastiveTransformerHead: loss_decode must be a '
                            'PatchContrastLoss (needs .clip), got '
                            f'{type(self.loss_decode).__name__}')
        # The segmentation classifier of BaseDecodeHead has no use here; an
        # unused parameter would also force DDP's find_unused_parameters.
        del self.conv_seg
        self.strides = tuple(strides)
        self.stage_weights = tuple(stage_weights)
        self.num_samples = num_samples
        self.ignore_only_negatives = ignore_only_negatives
        self.seed = seed
        self._generator: Optional[torch.Generator] = None
        self.collect_stats = collect_stats
        # statistics of the last training step and (K,) classes present in
        # its GT; None until a step ran.
        self.step_stats: Optional[StepStats] = None
        self.step_present: Optional[Tensor] = None
        self.grad_stats = grad_stats
        self.checkpoint_projection = checkpoint_projection
        # (S, 2): squared norms of CT's and of the other losses' gradient at
        # each stage output, filled during backward; None until measured.
        self.step_grad_norms: Optional[Tensor] = None
        with global_rng_untouched():
            self.projectors = nn.ModuleList(
                build_projector(c, proj_channels, proj_num_layers)
                for c in self.in_channels)
        self.positive_purity = positive_purity
        self.cross_rank = cross_rank
        self.memory = PatchMemory(
            len(self.in_channels), num_classes, memory_size, proj_channels,
            memory_per_step) if memory_size else None

    def init_weights(self):
        """MMEngine's ``init_cfg`` initialisation (truncated normal by
        default), with the global RNG restored afterwards: the modules
        initialised after this head draw what they draw without CT."""
        with global_rng_untouched():
            super().init_weights()

    # ------------------------------------------------------------------ #
    def _stage_inputs(self, inputs: Sequence[Tensor]) -> List[Tensor]:
        if not isinstance(inputs, (list, tuple)):
            raise TypeError('ContrastiveTransformerHead expects the list of '
                            f'backbone stage outputs, got {type(inputs)}')
        if max(self.in_index) >= len(inputs):
            raise IndexError(
                f'ContrastiveTransformerHead: in_index {list(self.in_index)} '
                f'but the backbone gave {len(inputs)} outputs')
        feats = self._transform_inputs(inputs)
        for i, (feat, channels) in enumerate(zip(feats, self.in_channels)):
            if feat.dim() != 4 or feat.shape[1] != channels:
                raise ValueError(
                    f'ContrastiveTransformerHead: backbone output '
                    f'{self.in_index[i]} has shape {tuple(feat.shape)}, '
                    f'expected (B, in_channels[{i}]={channels}, H, W)')
        return feats

    def forward(self, inputs: Sequence[Tensor]) -> List[Tensor]:
        """Projected, L2-normalised embeddings of every token.

        Used by analysis tools; training draws tokens before projecting.

        Args:
            inputs (list[Tensor]): backbone outputs, (B, C_i, h_i, w_i).

        Returns:
            list[Tensor]: per used stage, (B, D, h_i, w_i).
        """
        outs = []
        for feat, projector in zip(self._stage_inputs(inputs), self.projectors):
            tokens = feat.permute(0, 2, 3, 1)
            emb = F.normalize(projector(tokens.float()), dim=-1)
            outs.append(emb.permute(0, 3, 1, 2))
        return outs

    def predict(self, inputs, batch_img_metas, test_cfg):
        raise RuntimeError('ContrastiveTransformerHead is a training-only '
                           'auxiliary head; it has no prediction')

    def _get_generator(self, device: torch.device
                       ) -> Optional[torch.Generator]:
        """The generator of the candidate draws (None: torch's global one).

        Inside an MMEngine training loop the draws come from the head's own
        generator, re-seeded at every call from ``(seed, iteration, rank)``,
        the iteration being the one MMEngine's ``RuntimeInfoHook`` writes
        into the message hub before each training step; ``seed`` is the
        head's ``seed`` or, when that is None, the seed MMEngine gave torch
        (``torch.initial_seed()``, the run's ``randomness.seed``). So CT
        never draws from the global RNG during training (dropout and
        drop-path masks and the data augmentation see the same random stream
        with and without CT), a run resumed from a checkpoint draws exactly
        what the uninterrupted run drew (MMEngine does not restore torch's
        RNG state on resume), and the ranks of a distributed run draw
        differently.

        Outside a training loop (no iteration in the message hub), a head
        with a ``seed`` seeds its generator once and continues its stream;
        one without draws from torch's global RNG, as any torch op does.
        """
        step = training_iteration()
        if device.type == 'meta' or (self.seed is None and step is None):
            return None  # 'meta': shapes only, no generator lives there
        seed = torch.initial_seed() if self.seed is None else self.seed
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(seed)
        if step is not None:
            # under cross-rank contrast every rank draws the same memory
            # negatives, so the ranks compute one loss
            rank = 0 if self.cross_rank else get_rank()
            self._generator.manual_seed(mix_seed(seed, step, rank))
        return self._generator

    def _embed(self, feat: Tensor, projector: nn.Module,
               index: Tensor) -> Tensor:
        """Project the drawn tokens; fp32 so AMP cannot overflow the norms.

        ``index`` holds token indices ``b * h * w + row * w + col``. A
        ``Linear[-GELU-Linear]*`` head (the one :func:`build_projector`
        makes) goes through :func:`~ct_mmseg.core.project_tokens`: one
        autograd node that reads the (B, C, h, w) map in place, never a
        channels-last copy of it (50 MB at stage 0 for Swin-T, 512 px,
        batch 8, fp32), and keeps only the output for backward. Any other
        head goes through autograd, with :func:`torch.utils.checkpoint`
        under ``checkpoint_projection``.
        """
        with torch.autocast(device_type=feat.device.type, enabled=False):
            linears = mlp_linears(projector)
            if linears is not None:
                return project_tokens(feat, index, linears,
                                      recompute_hidden=self._recompute())
            if projects_every_token(feat, index.numel()):
                tokens = feat.permute(0, 2, 3, 1).reshape(-1, feat.shape[1])
                return self._project(projector, tokens)[index]
            return self._project(projector, gather_tokens(feat, index))

    def _recompute(self) -> bool:
        return self.checkpoint_projection and self.training and \
            torch.is_grad_enabled()

    def _project(self, projector: nn.Module, tokens: Tensor) -> Tensor:
        """L2-normalised projections of (N, C) tokens by a head of another
        form than :func:`build_projector`'s, in fp32, through autograd.

        With ``checkpoint_projection`` (training, gradients on) the head is
        recomputed in backward instead of keeping its activations. Same
        values.
        """
        def project(x):
            return F.normalize(projector(x.float()), dim=-1)
        # not on 'meta' (shape-only tensors, nothing to save): torch < 2.2's
        # checkpoint has no RNG state handler for that device
        if self._recompute() and tokens.device.type != 'meta':
            return checkpoint(project, tokens, use_reentrant=False)
        return project(tokens)

    def loss(self, inputs: Sequence[Tensor], batch_data_samples: SampleList,
             train_cfg: ConfigType) -> Dict[str, Tensor]:
        """Contrastive loss of each stage.

        Args:
            inputs (list[Tensor]): backbone outputs, (B, C_i, h_i, w_i).
            batch_data_samples (list[SegDataSample]): with ``gt_sem_seg`` of
                shape (1, H, W) each (padded to one size by the preprocessor).
            train_cfg (dict): unused.

        Returns:
            dict[str, Tensor]: ``{loss_name}_s{i}`` per stage, scalars.
        """
        feats = self._stage_inputs(inputs)
        gt = torch.stack([sample.gt_sem_seg.data.reshape(
            sample.gt_sem_seg.data.shape[-2:])
            for sample in batch_data_samples]).long()
        if gt.shape[0] != feats[0].shape[0]:
            raise ValueError(f'ContrastiveTransformerHead: {gt.shape[0]} GT '
                             f'masks for a batch of {feats[0].shape[0]}')
        check_labels(gt, self.num_classes, self.ignore_index)
        grids = [tuple(feat.shape[-2:]) for feat in feats]
        # every stage's block labels from one pass over the GT
        tables = stage_labels(gt, self.strides, grids, self.num_classes,
                              self.ignore_index)
        present = stage_classes_present(tables)
        pure_counts = stage_positive_counts(tables)
        majority, counts = None, pure_counts
        if self.positive_purity < 1:
            majority = stage_majority_labels(tables, self.positive_purity)
            counts = majority_positive_counts(majority, self.num_classes)
        images = gt.new_tensor([gt.shape[0]])
        if self.cross_rank:  # every rank draws with the whole batch's shapes
            summed = sum_over_ranks(torch.cat([
                counts.flatten(), present.long(), images]))
            counts = summed[:counts.numel()].view_as(counts)
            present = summed[counts.numel():-1] > 0
            images = summed[-1:]
        # Work on the classes present only, so that time and memory follow
        # them and not the dataset's class count (150 for ADE20K), and draw
        # no wider than the largest positive set of the stage: a loss pairs
        # positive i with negative i, so negatives beyond that are never used.
        class_list, positive_list, total_images = step_shapes_to_host(
            present, counts.amax(1), images)
        class_ids = torch.tensor(class_list, dtype=torch.long,
                                 device=gt.device)
        stage_masks = stage_patch_masks(tables, class_ids,
                                        self.ignore_only_negatives)
        if majority is not None:
            stage_masks = [PatchMasks(positive, masks.negative)
                           for positive, masks in zip(majority_positive_masks(
                               majority, class_ids, self.num_classes),
                               stage_masks)]
        generator = self._get_generator(gt.device)
        uniforms = self._image_uniforms(gt, grids, total_images) \
            if self.cross_rank else None
        if self.grad_stats:
            self.step_grad_norms = feats[0].new_zeros(len(feats), 2,
                                                      dtype=torch.float)

        class_losses_of_stages, stage_stats = [], []
        for stage, (feat, masks, projector) in enumerate(zip(
                feats, stage_masks, self.projectors)):
            width = self.loss_decode.draw_width(positive_list[stage],
                                                self.num_samples)
            if self.grad_stats and feat.requires_grad:
                feat = track_gradient_share(feat,
                                            self.step_grad_norms[stage])
            pos_emb, pos_count, neg_emb, neg_count = self._draw_and_embed(
                feat, projector, masks, width, generator,
                None if uniforms is None else
                class_keys(uniforms[stage], class_ids))
            # the memory's partners only when there is a memory: a loss
            # module written for the paper's CT needs no ``memory`` argument
            extra = {} if self.memory is None else dict(
                memory=self.memory.partners(stage, class_ids, width,
                                            generator))
            class_losses = self.loss_decode(pos_emb, pos_count, neg_emb,
                                            neg_count, **extra)
            if self.memory is not None and self.training:
                self.memory.update(stage, class_ids, pos_emb, pos_count)
            class_losses_of_stages.append(class_losses.loss)
            if self.collect_stats:
                stage_stats.append(torch.stack([
                    masks.positive.sum(1).float(),
                    masks.negative.sum(1).float(),
                    class_losses.pairs.float(),
                    class_losses.positive_pairs.float(),
                    class_losses.positive_cosine.float(),
                    class_losses.negative_cosine.float()]))
        if self.collect_stats:
            self._keep_stats(stage_stats, class_ids, present,
                             counts - pure_counts if majority is not None
                             else None)

        name = self.loss_decode.loss_name
        return {f'{name}_s{i}': loss for i, loss in enumerate(
            self.loss_decode.reduce(class_losses_of_stages,
                                    self.stage_weights, len(class_list)))}

    def _draw_and_embed(self, feat: Tensor, projector: nn.Module,
                        masks: PatchMasks, width: int,
                        generator: Optional[torch.Generator],
                        keys: Optional[Tensor]
                        ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Draw up to ``width`` positives and negatives per class and embed
        them: (K', W, D) positives, (K',) counts, negatives, counts.

        Without ``keys`` the draw is uniform from ``generator``; with
        float64 (K', N) ``keys`` it keeps the largest keys, and the draws of
        all ranks are merged (:func:`~ct_mmseg.core.cross_rank.gather_draws`).
        """
        if keys is None:
            pos = sample_candidates(masks.positive, width, generator)
            neg = sample_candidates(masks.negative, width, generator)
        else:
            pos_draw = draw_by_keys(masks.positive, keys, width)
            neg_draw = draw_by_keys(masks.negative, keys, width)
            pos, neg = pos_draw.candidates, neg_draw.candidates
        index = torch.cat([pos.index, neg.index], dim=1)
        emb = self._embed(feat, projector, index.flatten())
        emb = emb.view(*index.shape, emb.shape[-1])
        pos_emb, neg_emb = emb.split(pos.index.shape[1], dim=1)
        if keys is None or world()[1] == 1:
            return pos_emb, pos.count, neg_emb, neg.count
        return (*gather_draws(pos_emb, pos_draw.keys, width),
                *gather_draws(neg_emb, neg_draw.keys, width))

    def _image_uniforms(self, gt: Tensor, grids, total_images: int
                        ) -> List[Tensor]:
        """Per stage, float64 (2, B * h * w) uniforms tied to each image's
        index in the batch of all ranks (:mod:`ct_mmseg.core.image_keys`)."""
        step = training_iteration()
        seed = torch.initial_seed() if self.seed is None else self.seed
        first = batch_offset(gt.shape[0], total_images)
        seeds = [mix_seed(seed, 0 if step is None else step + 1,
                           first + b, stream=1) for b in range(gt.shape[0])]
        tokens = sum(h * w for h, w in grids)
        return split_stages(image_uniforms(seeds, tokens, gt.device), grids)

    def _keep_stats(self, stage_stats: List[Tensor], class_ids: Tensor,
                    present: Tensor, gained: Optional[Tensor]) -> None:
        """Keep the step's :class:`StepStats` for the hook (device only)."""
        stats = torch.stack(stage_stats).detach()
        # back onto the dataset's classes; absent classes read 0
        fields = stats.new_zeros(*stats.shape[:2], self.num_classes
                                 ).index_copy_(2, class_ids, stats).unbind(1)
        zeros = fields[0].new_zeros(fields[0].shape)
        self.step_stats = StepStats(
            *fields,
            gained_positives=zeros if gained is None else gained.float(),
            memory_fill=zeros if self.memory is None else self.memory.fill())
        self.step_present = present
