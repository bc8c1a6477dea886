"""``pip install .`` into an environment that already has the stack.

* The wheel states ranges, not pins, and carries the configs as package data.
* pip's resolver (``--dry-run``, ``--no-index``: seconds, no download) keeps
  an existing torch and compiled mmcv: in a fresh venv that holds the stack
  at the oldest supported versions (torch 2.1.2) or the newest (torch 2.14.1)
  it installs ct_mmseg and nothing else. The installed packages are stand-ins
  (a ``*.dist-info`` folder with METADATA only): the resolver reads nothing
  else, and a real torch would cost minutes.
* A torch below the floor is refused rather than silently kept.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import venv
import zipfile

import pytest
from e2e_utils import REPO

OLDEST = {'torch': '2.1.2', 'torchvision': '0.16.2', 'numpy': '1.26.4'}
NEWEST = {'torch': '2.14.1', 'torchvision': '0.29.1', 'numpy': '2.4.6'}
COMMON = {'mmengine': '0.10.7', 'mmcv': '2.1.0', 'mmsegmentation': '1.2.2',
          'mmpretrain': '1.2.0', 'scipy': '1.13.0', 'scikit-learn': '1.6.1',
          'ftfy': '6.3.1', 'regex': '2024.11.6', 'importlib-metadata': '8.0.0',
          'setuptools': '80.9.0'}


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """ct_mmseg's wheel, built from a copy of the sources (no build/ or
    egg-info in the work tree)."""
    src = tmp_path_factory.mktemp('src')
    for name in ('setup.py', 'README.md'):
        shutil.copy(osp.join(REPO, name), src)
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info')
    for name in ('ct_mmseg', 'configs'):
        shutil.copytree(osp.join(REPO, name), src / name, ignore=ignore)
    out = tmp_path_factory.mktemp('wheels')
    result = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps',
         '--no-build-isolation', '--no-index', '-q', '-w', str(out),
         str(src)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = out.glob('ct_mmseg-*.whl')
    return path


def test_wheel_states_ranges_and_carries_the_configs(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        meta = archive.read(next(n for n in names
                                 if n.endswith('.dist-info/METADATA')))
    requires = [line.split(':', 1)[1].strip() for line in
                meta.decode().splitlines() if line.startswith('Requires-Dist')]
    core = [r for r in requires if 'extra ==' not in r]
    assert not [r for r in core if '==' in r], core  # pins only in constraints
    for name in ('torch', 'mmcv', 'mmsegmentation', 'scipy', 'scikit-learn'):
        spec = next(r for r in core if r.split('<')[0].split('>')[0] == name)
        assert '>=' in spec and '<' in spec, spec  # a floor and a ceiling
    configs = 'ct_mmseg/.mim/configs/'
    assert configs + '_base_/contrastive_transformer.py' in names
    assert configs + 'ct/demo/swin-tiny_upernet_ct_potsdam-demo.py' in names
    # the locator finds them in an unpacked wheel as it would installed
    unpacked = osp.join(osp.dirname(wheel), 'unpacked')
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    from ct_mmseg.configs import configs_dir, fragment_path
    package = osp.join(unpacked, 'ct_mmseg')
    assert configs_dir(package) == osp.join(package, '.mim', 'configs')
    assert osp.isfile(fragment_path(package))


def fake_env(root, installed):
    """A venv (no pip) whose site-packages lists ``installed`` as
    installed distributions."""
    venv.create(root, with_pip=False)
    (site,) = [p for p in root.glob('lib/python*/site-packages')]
    for name, version in installed.items():
        info = site / f'{name.replace("-", "_")}-{version}.dist-info'
        info.mkdir()
        (info / 'METADATA').write_text(
            f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
        (info / 'INSTALLER').write_text('pip\n')
        (info / 'RECORD').write_text('')
    return root / 'bin' / 'python'


def normalized(name):
    """PEP 503 name (setuptools versions write ct_mmseg or ct-mmseg)."""
    return re.sub(r'[-_.]+', '-', name).lower()


def no_pip_config():
    """The environment without this machine's pip settings (local wheel
    folders, global constraints): only the wheel built here is offered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('PIP_')}
    env['PIP_CONFIG_FILE'] = os.devnull
    return env


def dry_run(python, wheel, tmp_path):
    report = tmp_path / 'report.json'
    result = subprocess.run(
        [sys.executable, '-m', 'pip', '--python', str(python), 'install',
         '--dry-run', '--no-index', '--find-links', str(wheel.parent),
         '--report', str(report), 'ct_mmseg'],
        capture_output=True, text=True, timeout=300, env=no_pip_config())
    return result, report


@pytest.mark.parametrize('stack', [OLDEST, NEWEST],
                         ids=['torch2.1', 'torch2.14'])
def test_install_keeps_the_existing_torch_and_mmcv(wheel, tmp_path, stack):
    python = fake_env(tmp_path / 'env', {**stack, **COMMON})
    result, report = dry_run(python, wheel, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    to_install = {normalized(item['metadata']['name']):
                  item['metadata']['version']
                  for item in json.loads(report.read_text())['install']}
    assert to_install == {'ct-mmseg': wheel.name.split('-')[1]}


def test_a_torch_below_the_floor_is_not_silently_kept(wheel, tmp_path):
    python = fake_env(tmp_path / 'env', {**OLDEST, **COMMON,
                                         'torch': '1.13.1'})
    result, _ = dry_run(python, wheel, tmp_path)
    assert result.returncode != 0
    assert 'torch<2.15,>=2.1.0' in result.stdout + result.stderr
