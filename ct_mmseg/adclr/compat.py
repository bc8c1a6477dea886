"""mmcv 2.1.0's ``adjust_hue`` on numpy >= 2.

mmcv rotates the hue channel with ``h += np.uint8(hue_factor * 255)``, which
relied on numpy 1 wrapping negative integers into uint8. numpy 2 raises
``OverflowError: Python integer -22 out of bounds for uint8`` instead, so
mmpretrain's ``ColorJitter`` (DINO's ``hue=0.1`` draws shifts in
[-0.1, 0.1]) crashes on about half its calls. :func:`patch_mmcv_adjust_hue`
replaces it, only where the installed one fails, by the same computation
with the shift taken modulo 256: numpy 1's result.
"""
import cv2
import mmcv
import mmcv.image
import mmcv.image.photometric as photometric
import numpy as np
from PIL import Image

ORIGINAL_ADJUST_HUE = photometric.adjust_hue


def adjust_hue(img: np.ndarray, hue_factor: float,
               backend=None) -> np.ndarray:
    """``mmcv.image.adjust_hue`` (same arguments, checks and result), with
    the uint8 hue shift wrapped explicitly."""
    if backend is None:
        backend = photometric.imread_backend
    if backend not in ['cv2', 'pillow']:
        raise ValueError(f'backend: {backend} is not supported.'
                         f"Supported backends are 'cv2', 'pillow'")
    if not (-0.5 <= hue_factor <= 0.5):
        raise ValueError(f'hue_factor:{hue_factor} is not in [-0.5, 0.5].')
    if not (isinstance(img, np.ndarray) and (img.ndim in {2, 3})):
        raise TypeError('img should be ndarray with dim=[2 or 3].')
    shift = np.uint8(int(hue_factor * 255) % 256)
    if backend == 'pillow':
        assert img.dtype == np.uint8, 'Pillow backend only support uint8 type'
        pil_image = Image.fromarray(img[..., ::-1], mode='RGB')
        hue, saturation, value = pil_image.convert('HSV').split()
        hue = np.array(hue, dtype=np.uint8)
        with np.errstate(over='ignore'):
            hue += shift  # uint8 addition wraps around the hue circle
        pil_image = Image.merge(
            'HSV', (Image.fromarray(hue, 'L'), saturation, value)).convert(
                pil_image.mode)
        return np.array(pil_image, dtype=img.dtype)[..., ::-1]
    dtype = img.dtype
    hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_BGR2HSV_FULL)
    hue, saturation, value = cv2.split(hsv)
    hue = hue.astype(np.uint8)
    with np.errstate(over='ignore'):
        hue += shift
    hsv = cv2.merge([hue, saturation, value])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL).astype(dtype)


def mmcv_adjust_hue_fails() -> bool:
    """True if the installed ``mmcv.adjust_hue`` fails on a negative
    shift (mmcv 2.1.0 on numpy >= 2)."""
    try:
        ORIGINAL_ADJUST_HUE(np.zeros((1, 1, 3), np.uint8), -0.1,
                            backend='cv2')
    except OverflowError:
        return True
    return False


def patch_mmcv_adjust_hue() -> None:
    if photometric.adjust_hue is not adjust_hue and mmcv_adjust_hue_fails():
        mmcv.adjust_hue = mmcv.image.adjust_hue = photometric.adjust_hue = \
            adjust_hue
