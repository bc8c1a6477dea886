"""Synthetic ground truth and batches for the benchmark.

Real segmentation batches hold a handful of a dataset's classes per image,
in irregular regions; :func:`realistic_gt` draws masks like that (Voronoi
regions, long-tailed class draw), :func:`make_batch` wraps them with random
images into MMSeg's inputs and ``SegDataSample``s.
"""
import torch


def zipf_classes(num_classes, count, generator=None):
    """``count`` distinct class ids of ``num_classes``, frequent ones likelier.

    Real datasets are long-tailed (ADE20K's wall, floor and sky are in most
    images, most of its 150 classes in few): class c is drawn with weight
    1 / (c + 1).

    Returns:
        Tensor: long (min(count, num_classes),).
    """
    weights = 1.0 / torch.arange(1, num_classes + 1, dtype=torch.float)
    return torch.multinomial(weights, min(count, num_classes),
                             replacement=False, generator=generator)


def _voronoi_mask(pixels, size, classes, regions_per_class, generator):
    """(size, size) labels: ``regions_per_class`` random seed points per
    class of ``classes`` (k,), each pixel labelled by its nearest seed.
    ``pixels`` (size * size, 2) are the pixel coordinates."""
    seeds = torch.rand(len(classes) * regions_per_class, 2,
                       generator=generator) * size
    owner = classes.repeat(regions_per_class)
    nearest = torch.cdist(pixels, seeds).argmin(1)
    return owner[nearest].view(size, size)


def realistic_gt(batch, size, num_classes, classes_per_image=8,
                 batch_classes=None, regions_per_class=3, generator=None):
    """(B, size, size) labels shaped like real segmentation batches.

    Each image holds a handful of the dataset's classes (not all K of
    them), laid out as irregular regions of varied size (a Voronoi partition
    of random seed points, ``regions_per_class`` seeds per class), so there
    are mixed patches at region borders and small regions that the coarse
    stages do not see purely.

    Args:
        batch, size (int): B and the square image size.
        num_classes (int): K of the dataset.
        classes_per_image (int): classes in each image (at most K).
        batch_classes (int, optional): classes present in the whole batch;
            each image then takes its classes from that set, all of them
            covered. Default: each image draws its own classes from all K
            (long-tailed, see :func:`zipf_classes`).
        regions_per_class (int): Voronoi seeds per class in an image.
        generator (torch.Generator, optional): for reproducible masks.

    Returns:
        Tensor: long (B, size, size).
    """
    pool = None
    if batch_classes is not None:
        pool = zipf_classes(num_classes, batch_classes, generator)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float),
                            torch.arange(size, dtype=torch.float),
                            indexing='ij')
    pixels = torch.stack([ys.flatten(), xs.flatten()], 1)
    masks = []
    for image in range(batch):  # a handful of images: small, bounded
        if pool is None:
            classes = zipf_classes(num_classes, classes_per_image, generator)
        else:
            take = min(classes_per_image, len(pool))
            # rotate through the pool so that every class is in some image
            start = (image * take) % len(pool)
            classes = pool.roll(-start)[:take]
        masks.append(_voronoi_mask(pixels, size, classes, regions_per_class,
                                   generator))
    return torch.stack(masks)


def make_batch(batch, size, num_classes, device, seed, classes_per_image=8):
    """Random images and :func:`realistic_gt` masks as MMSeg inputs.

    Returns:
        tuple: inputs (B, 3, size, size) float on ``device`` and B
        ``SegDataSample``s with ``gt_sem_seg`` (1, size, size) and the
        image-shape metainfo.
    """
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, size, size, generator=gen)
    gt = realistic_gt(batch, size, num_classes, classes_per_image,
                      generator=gen)
    samples = []
    for mask in gt:
        sample = SegDataSample(metainfo=dict(
            img_shape=(size, size), pad_shape=(size, size),
            ori_shape=(size, size), padding_size=[0, 0, 0, 0]))
        sample.gt_sem_seg = PixelData(data=mask[None].to(device))
        samples.append(sample)
    return inputs.to(device), samples


def make_head_samples(gt):
    """``SegDataSample``s carrying ``gt`` (B, H, W) as ``gt_sem_seg``
    (1, H, W), for the CT head alone."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for mask in gt:
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=mask[None])
        samples.append(sample)
    return samples
