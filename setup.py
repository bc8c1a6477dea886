"""ct_mmseg: Contrastive Transformer (CT) for MMSegmentation 1.x.

``install_requires`` holds the *ranges* the code supports, so that
``pip install .`` into an environment that already has torch and a compiled
mmcv keeps them (docs/install.md lists the stacks the suite passed on). The
exact versions that tools/setup_env.sh installs live in tools/constraints.txt
(newest stack) and tools/constraints-oldest.txt (oldest stack), nowhere else.

The configs (the CT fragment and the example configs) are package data: a
wheel carries them as ``ct_mmseg/.mim/configs`` (the layout of OpenMMLab
packages), and ``python -m ct_mmseg.configs`` prints where they are.
"""
import os
import os.path as osp
import re
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))


def read_version():
    with open(osp.join(HERE, 'ct_mmseg', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


class BuildPyWithConfigs(build_py):
    """build_py that also copies ``configs/`` into the built package.

    package_data cannot name files outside the package folder, and the
    configs live at the repository root (where MMSeg users expect them), so
    they are copied into ``ct_mmseg/.mim/configs`` of the build tree.
    """

    def run(self):
        super().run()
        source = osp.join(HERE, 'configs')
        if getattr(self, 'editable_mode', False) or not osp.isdir(source):
            return  # an editable install finds the repository's configs/
        target = osp.join(self.build_lib, 'ct_mmseg', '.mim', 'configs')
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target,
                        ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        target = osp.join(self.build_lib, 'ct_mmseg', '.mim', 'configs')
        for root, _, files in os.walk(target):
            outputs += [osp.join(root, name) for name in files]
        return outputs


setup(
    name='ct_mmseg',
    version=read_version(),
    description='Contrastive Transformer: supervised patch-contrastive training '
    'for MMSegmentation',
    long_description=open(osp.join(HERE, 'README.md')).read()
    if osp.exists(osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['ct_mmseg', 'ct_mmseg.*']),
    # The Dubai subset of the demo (tools/run_demo.sh), in the release's
    # layout, so that `pip install .` users have it too.
    package_data={
        'ct_mmseg.datasets': [
            'dubai_mini/README.md',
            'dubai_mini/Tile */images/*.jpg',
            'dubai_mini/Tile */masks/*.png',
        ],
    },
    cmdclass={'build_py': BuildPyWithConfigs},
    python_requires='>=3.9',
    # Floors: the oldest stack the suite passed on (torch 2.1, numpy 1.x,
    # see docs/install.md) or the API the code uses; ceilings: the newest
    # release measured (torch 2.14) or the next major version. mmcv's range
    # is MMSeg 1.2's own assertion.
    install_requires=[
        'torch>=2.1.0,<2.15',
        'torchvision>=0.16.0,<0.30',
        'mmengine>=0.10.0,<1.0.0',
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmsegmentation>=1.2.0,<1.3.0',
        'mmpretrain>=1.0.0,<2.0.0',  # PoolFormer backbones
        'numpy>=1.23,<3',
        'scipy>=1.10,<2',  # t-tests and CIs of ct_mmseg/study/statistics.py
        'scikit-learn>=1.2,<2',  # t-SNE / PCA of tools/plot_embeddings.py
        # imported by mmseg 1.2.2 / mmpretrain 1.2.0 but not declared by them
        'ftfy>=6.0',
        'regex',
        'importlib_metadata',
        # mmengine (resolving `mmseg::` config paths) and mim import
        # pkg_resources, which setuptools 81 removed
        'setuptools<81',
    ],
    extras_require={
        'tests': ['pytest', 'hypothesis', 'matplotlib', 'tensorboard',
                  'seaborn'],
        'umap': ['umap-learn>=0.5'],  # tools/plot_embeddings.py --method umap
    },
    license='Apache-2.0',
)
