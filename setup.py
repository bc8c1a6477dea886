"""ct_mmseg: Contrastive Transformer (CT) for MMSegmentation 1.x."""
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version():
    with open(osp.join(HERE, 'ct_mmseg', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


setup(
    name='ct_mmseg',
    version=read_version(),
    description='Contrastive Transformer: supervised patch-contrastive training '
    'for MMSegmentation',
    long_description=open(osp.join(HERE, 'README.md')).read()
    if osp.exists(osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['ct_mmseg', 'ct_mmseg.*']),
    python_requires='>=3.9',
    # The stack measured to work together (see docs/install.md). mmcv 2.1.0 has
    # no wheel for this torch: tools/setup_env.sh compiles it.
    install_requires=[
        'torch==2.14.1',
        'torchvision==0.29.1',
        'mmengine==0.10.7',
        'mmcv==2.1.0',
        'mmsegmentation==1.2.2',
        'mmpretrain==1.2.0',
        'numpy',
        # imported by mmseg 1.2.2 / mmpretrain 1.2.0 but not declared by them
        'ftfy',
        'regex',
        'importlib_metadata',
        'setuptools>=77.0.3,<81',
    ],
    extras_require={
        'tests': ['pytest', 'hypothesis', 'matplotlib', 'tensorboard', 'seaborn']
    },
    license='Apache-2.0',
)
