"""k-NN evaluation of a pretrained ViT's frozen patch tokens (with a linear
classifier beside it).

How well a pretrained ViT's tokens separate classes, patch by patch, is read
off labelled images without training the backbone: every image is resized
(short side ``short_side`` px), every layer's patch tokens are taken from
the frozen ViT, and each patch gets the class covering at least
``min_purity`` of its pixels (other patches are left out). Two classifiers
are fitted on the patches of the training images and scored on the test
images (patch accuracy and patch mIoU):

* :func:`knn_predict`: DINO's weighted k-NN on cosine similarity;
* :func:`linear_classifier_predict`: a class-balanced softmax classifier on
  standardised tokens.

:func:`knn_and_linear_eval` runs both on every layer. Used by
``tools/probe_tokens.py``; plain torch, vectorised.
"""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmpretrain.models.backbones import VisionTransformer

from .checkpoint_conversion import backbone_state_dict, load_state_dict

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def build_frozen_vit(config: str,
                     checkpoint: Optional[str] = None,
                     source: str = 'teacher',
                     seed: int = 0) -> VisionTransformer:
    """The backbone of an ADCLR/DINO pretraining config as a frozen
    mmpretrain ViT returning every layer's patch tokens.

    Args:
        config: the pretraining config (it gives the architecture).
        checkpoint: its checkpoint; None = random initialisation (the
            backbone's own init, seeded by ``seed``).
        source: 'teacher' (DINO evaluates the EMA teacher) or 'student'.
    """
    backbone_cfg = Config.fromfile(config).model.backbone
    arch = backbone_cfg.get('arch', 'base')
    arch = VisionTransformer.arch_zoo[arch] if isinstance(arch, str) else arch
    torch.manual_seed(seed)
    # MMEngine logs one line per tensor at init: keep the output short
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    vit = VisionTransformer(
        arch=dict(arch),
        img_size=backbone_cfg.get('img_size', 224),
        patch_size=backbone_cfg.get('patch_size', 16),
        final_norm=backbone_cfg.get('final_norm', True),
        out_type='featmap',
        out_indices=list(range(arch['num_layers'])))
    vit.init_weights()
    logger.setLevel(level)
    if checkpoint is not None:
        state_dict = backbone_state_dict(load_state_dict(checkpoint), source)
        vit.load_state_dict(state_dict, strict=True)
    vit.eval()  # (mmpretrain's backbones' train() returns None)
    return vit.requires_grad_(False)


def resize_for_tokens(image: np.ndarray, labels: np.ndarray, short_side: int,
                      patch_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Resize so the short side is ``short_side`` and both sides are
    multiples of the patch size: image bilinear (antialiased), labels
    nearest. Returns (3, H, W) float and (H, W) long tensors."""
    height, width = labels.shape
    scale = short_side / min(height, width)
    size = [max(patch_size, round(side * scale / patch_size) * patch_size)
            for side in (height, width)]
    image_t = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()
    image_t = F.interpolate(image_t, size=size, mode='bilinear',
                            antialias=True, align_corners=False)[0]
    labels_t = F.interpolate(
        torch.from_numpy(labels.astype(np.int64))[None, None].float(),
        size=size, mode='nearest')[0, 0].long()
    return image_t, labels_t


def patch_labels(labels: torch.Tensor, patch_size: int, num_classes: int,
                 min_purity: float, ignore_index: int = 255) -> torch.Tensor:
    """(H, W) pixel labels -> (H/p * W/p,) patch labels, row-major: the
    class covering >= ``min_purity`` of the patch's pixels, else
    ``ignore_index`` (ignored pixels count against every class)."""
    valid = labels < num_classes
    one_hot = F.one_hot(labels.clamp(max=num_classes - 1), num_classes)
    one_hot = (one_hot * valid[..., None]).permute(2, 0, 1)[None].float()
    fraction = F.avg_pool2d(one_hot, patch_size)[0]  # (K, h, w)
    purity, label = fraction.max(0)
    label[purity < min_purity] = ignore_index
    return label.flatten()


@torch.no_grad()
def patch_tokens(vit: VisionTransformer, image: torch.Tensor,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """(3, H, W) RGB 0-255 -> (L, H/p * W/p, C): every layer's tokens."""
    mean = image.new_tensor(mean)[:, None, None]
    std = image.new_tensor(std)[:, None, None]
    feature_maps = vit(((image - mean) / std)[None])
    return torch.stack([f[0].flatten(1).T for f in feature_maps])


def collect(vit: VisionTransformer, pairs: Sequence[Tuple[np.ndarray,
                                                          np.ndarray]],
            num_classes: int, short_side: int,
            min_purity: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Tokens (L, N, C) and labels (N,) of the labelled patches of
    ``pairs`` of (RGB image, label mask)."""
    patch = vit.patch_embed.projection.kernel_size[0]
    tokens, labels = [], []
    for image, mask in pairs:
        image_t, mask_t = resize_for_tokens(image, mask, short_side, patch)
        label = patch_labels(mask_t, patch, num_classes, min_purity)
        keep = label < num_classes
        tokens.append(patch_tokens(vit, image_t)[:, keep])
        labels.append(label[keep])
    return torch.cat(tokens, 1), torch.cat(labels)


def knn_predict(train: torch.Tensor, train_labels: torch.Tensor,
                test: torch.Tensor, num_classes: int, k: int = 20,
                temperature: float = 0.07) -> torch.Tensor:
    """DINO's weighted k-NN on cosine similarity: each of the k nearest
    training tokens votes exp(cos / T) for its class."""
    train = F.normalize(train, dim=1)
    test = F.normalize(test, dim=1)
    similarity, index = (test @ train.T).topk(min(k, len(train)), dim=1)
    votes = torch.zeros(len(test), num_classes)
    votes.scatter_add_(1, train_labels[index],
                       (similarity / temperature).exp())
    return votes.argmax(1)


def linear_classifier_predict(train: torch.Tensor,
                              train_labels: torch.Tensor, test: torch.Tensor,
                              num_classes: int, steps: int = 300,
                              lr: float = 0.05, weight_decay: float = 1e-4,
                              seed: int = 0) -> torch.Tensor:
    """A softmax classifier on standardised tokens, full-batch Adam, with
    class-balanced weights (the classes are very unequal)."""
    mean, std = train.mean(0), train.std(0) + 1e-6
    train, test = (train - mean) / std, (test - mean) / std
    generator = torch.Generator().manual_seed(seed)
    weight = (torch.randn(train.shape[1], num_classes, generator=generator) *
              0.01).requires_grad_()
    bias = torch.zeros(num_classes, requires_grad=True)
    counts = torch.bincount(train_labels, minlength=num_classes).float()
    class_weight = counts.sum() / (num_classes * counts.clamp(min=1))
    optimiser = torch.optim.Adam([weight, bias], lr=lr,
                                 weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(steps):
            optimiser.zero_grad()
            loss = F.cross_entropy(train @ weight + bias, train_labels,
                                   weight=class_weight)
            loss.backward()
            optimiser.step()
    return (test @ weight + bias).argmax(1).detach()


def scores(prediction: torch.Tensor, target: torch.Tensor,
           num_classes: int) -> Dict[str, float]:
    """Patch accuracy and mIoU (over classes present in target or
    prediction), in %."""
    confusion = torch.bincount(target * num_classes + prediction,
                               minlength=num_classes**2).reshape(
                                   num_classes, num_classes).double()
    intersection = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = union > 0
    return dict(
        acc=100 * (intersection.sum() / confusion.sum()).item(),
        miou=100 * (intersection[present] / union[present]).mean().item())


def knn_and_linear_eval(vit: VisionTransformer, train_pairs, test_pairs,
                        num_classes: int, short_side: int = 128,
                        min_purity: float = 0.5, k: int = 20,
                        seed: int = 0) -> List[Dict[str, float]]:
    """k-NN and linear-classifier scores of every layer's patch tokens.

    Args:
        vit: a frozen ViT returning every layer's feature map
            (:func:`build_frozen_vit`).
        train_pairs / test_pairs: (RGB image (H, W, 3) uint8, label mask
            (H, W)) pairs; the classifiers fit on the first, are scored on
            the second.
        num_classes: label values >= num_classes are ignored.
        k: neighbours of the k-NN (DINO: 20).

    Returns one dict per layer: ``layer``, ``knn_acc``, ``knn_miou``,
    ``linear_acc``, ``linear_miou``, and the patch counts.
    """
    train, train_labels = collect(vit, train_pairs, num_classes, short_side,
                                  min_purity)
    test, test_labels = collect(vit, test_pairs, num_classes, short_side,
                                min_purity)
    rows = []
    for layer in range(train.shape[0]):
        row = dict(layer=layer, train_patches=len(train_labels),
                   test_patches=len(test_labels))
        knn = knn_predict(train[layer], train_labels, test[layer],
                          num_classes, k)
        linear = linear_classifier_predict(train[layer], train_labels,
                                           test[layer], num_classes,
                                           seed=seed)
        for name, prediction in (('knn', knn), ('linear', linear)):
            for metric, value in scores(prediction, test_labels,
                                        num_classes).items():
                row[f'{name}_{metric}'] = value
        rows.append(row)
    return rows
