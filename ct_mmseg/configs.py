"""Where the CT configs are, for configs that inherit them.

A wheel (``pip install .``) carries the repository's ``configs/`` as
``ct_mmseg/.mim/configs``; an editable install (``pip install -e .``) uses the
repository's own ``configs/``. MMEngine resolves ``package::path`` only for
OpenMMLab's own packages, so a user config names the fragment by its path::

    python -m ct_mmseg.configs                  # prints the folder
    python -m ct_mmseg.configs --copy my_configs/_base_
                                                # copies the fragment there

and then name ``'<printed folder>/_base_/contrastive_transformer.py'`` (or
the copied file's relative path) in ``_base_`` next to the MMSeg config. The fragment has no ``_base_`` of its
own, so a copy works anywhere.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from typing import Optional

FRAGMENT = osp.join('_base_', 'contrastive_transformer.py')


def configs_dir(package_dir: Optional[str] = None) -> str:
    """The folder holding ``_base_/contrastive_transformer.py`` and ``ct/``.

    Args:
        package_dir (str, optional): the ``ct_mmseg`` package folder
            (default: the imported one).
    """
    package_dir = package_dir or osp.dirname(osp.abspath(__file__))
    candidates = [
        osp.join(package_dir, '.mim', 'configs'),  # wheel install
        osp.join(osp.dirname(package_dir), 'configs'),  # source / editable
    ]
    for folder in candidates:
        if osp.isfile(osp.join(folder, FRAGMENT)):
            return folder
    raise FileNotFoundError(
        'ct_mmseg: no CT configs next to the package (looked in '
        f'{" and ".join(candidates)}); reinstall with `pip install .` from '
        'the repository')


def fragment_path(package_dir: Optional[str] = None) -> str:
    """Absolute path of ``_base_/contrastive_transformer.py``."""
    return osp.join(configs_dir(package_dir), FRAGMENT)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m ct_mmseg.configs',
        description='Print the folder of the installed CT configs, or copy '
        'the CT fragment into a folder of yours.')
    parser.add_argument('--fragment', action='store_true',
                        help='print the fragment file instead of the folder')
    parser.add_argument('--copy', metavar='DIR',
                        help='copy contrastive_transformer.py into DIR')
    args = parser.parse_args(argv)
    if args.copy:
        os.makedirs(args.copy, exist_ok=True)
        target = shutil.copy(fragment_path(), args.copy)
        print(osp.abspath(target))
    elif args.fragment:
        print(fragment_path())
    else:
        print(configs_dir())
    return 0


if __name__ == '__main__':
    sys.exit(main())
