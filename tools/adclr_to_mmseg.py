"""Convert an ADCLR/DINO checkpoint (mmpretrain) into MMSeg ViT weights.

    python tools/adclr_to_mmseg.py work_dirs/adclr/iter_300.pth vit_mmseg.pth \
        [--source teacher|student] [--check-config SEG_CONFIG]

Extracts the backbone (the EMA teacher by default, as DINO evaluates it),
renames mmpretrain's attention keys to MMSeg's, and writes
``{'state_dict': ..., 'meta': ...}`` for ``model.pretrained`` of an MMSeg ViT
config. With ``--check-config`` the result must fill that config's backbone
exactly (0 missing, 0 unexpected keys) or the tool exits with an error.
It prints the MMSeg ViT settings that rebuild the pretrained architecture.
"""
import argparse
import os
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from ct_mmseg.adclr.checkpoint_conversion import (  # noqa: E402
    BackboneHandoffError, SOURCES, check_against_config, convert_checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', help='ADCLR/DINO checkpoint')
    parser.add_argument('out', help='output file for MMSeg')
    parser.add_argument('--source', choices=sorted(SOURCES),
                        default='teacher',
                        help='network to export (default: teacher)')
    parser.add_argument('--check-config',
                        help='MMSeg config whose backbone must load the '
                        'result exactly')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    converted = convert_checkpoint(args.checkpoint, args.source)
    try:
        if args.check_config:
            check_against_config(converted['state_dict'], args.check_config)
    except BackboneHandoffError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    torch.save(converted, args.out)
    print(f'wrote {len(converted["state_dict"])} {args.source} backbone '
          f'tensors to {args.out}')
    if args.check_config:
        print(f'checked: they fill the backbone of {args.check_config} '
              '(0 missing, 0 unexpected keys)')
    settings = converted['meta'].get('mmseg_vit_settings')
    if settings:
        arguments = ', '.join(f'{k}={v!r}' for k, v in settings.items())
        print('MMSeg VisionTransformer settings of this backbone: '
              f'backbone=dict({arguments})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
