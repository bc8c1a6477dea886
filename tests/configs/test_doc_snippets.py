"""Every Python snippet of README.md and docs/*.md builds as written.

Each ```python block is a config, or a part of one:

* a block whose first line is a comment naming a file (``# configs/my/x.py``
  or ``# my_configs/x.py``) is written to that path in a scratch folder that
  holds a copy of this repository's ``configs/`` and, in ``my_configs/_base_``,
  the fragment as ``python -m ct_mmseg.configs --copy my_configs/_base_``
  (the README's command for a pip install) copies it; so relative ``_base_``
  paths resolve as they would for the reader;
* a block without ``_base_`` is a part to add to a config: it is added to the
  demo CT config.

The test then loads the config with mmengine, adds CT the way the runner does
when the config asks for it (``ct_head``), and builds the model with MMSeg's
registry. Nothing is trained, and no weights are downloaded.
"""
import glob
import os.path as osp
import re
import shutil
import textwrap

import pytest
from mmengine.config import Config

from ct_mmseg import configs as ct_configs
from ct_mmseg.runner import prepare_ct_config
from e2e_utils import REPO

DOCS = ['README.md', *sorted(osp.relpath(p, REPO) for p in
                             glob.glob(osp.join(REPO, 'docs', '*.md')))]
DEMO_CT = osp.join(REPO, 'configs', 'ct', 'demo',
                   'swin-tiny_upernet_ct_potsdam-demo.py')
BLOCK = re.compile(r'^([ \t]*)```python\n(.*?)^[ \t]*```', re.S | re.M)


def python_snippets():
    """(doc:line, code) of every ```python block, dedented."""
    found = []
    for doc in DOCS:
        with open(osp.join(REPO, doc)) as f:
            text = f.read()
        for match in BLOCK.finditer(text):
            line = text[:match.start()].count('\n') + 1
            found.append((f'{doc}:{line}', textwrap.dedent(match.group(2))))
    return found


SNIPPETS = python_snippets()


def test_the_snippets_are_found():
    names = [name for name, _ in SNIPPETS]
    assert len(SNIPPETS) >= 5, names
    assert sum(name.startswith('README.md') for name in names) >= 3


@pytest.fixture(scope='module')
def scratch(tmp_path_factory):
    root = tmp_path_factory.mktemp('snippets')
    shutil.copytree(osp.join(REPO, 'configs'), root / 'configs')
    ct_configs.main(['--copy', str(root / 'my_configs' / '_base_')])
    return root


def snippet_file(scratch, name, code):
    first = code.splitlines()[0].strip()
    header = re.match(r'#\s*([\w./-]+\.py)\b', first)
    if header:
        path = scratch / header.group(1)
    else:
        path = scratch / 'configs' / 'snippets' / (
            re.sub(r'\W', '_', name) + '.py')
    if '_base_' not in code:
        code = f'_base_ = [{DEMO_CT!r}]\n' + code
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(code)
    return path


@pytest.mark.parametrize('name,code', SNIPPETS, ids=[n for n, _ in SNIPPETS])
def test_snippet_builds(scratch, name, code):
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(snippet_file(scratch, name, code)))
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    if cfg.get('ct_head') is not None:
        cfg = prepare_ct_config(cfg)
    model = MODELS.build(cfg.model)
    if 'ct_head' in cfg or 'ContrastiveTransformerHead' in code:
        heads = [m for m in model.modules()
                 if type(m).__name__ == 'ContrastiveTransformerHead']
        assert len(heads) == 1, name
        # what the snippet sets reaches the head
        if "mode='infonce'" in code:
            assert heads[0].loss_decode.mode == 'infonce'


def test_manual_head_without_delete_names_in_index(scratch):
    """The README's manual-head snippet minus `_delete_`: the base's FCN
    head is merged in, and the error names the key at fault."""
    from mmseg.registry import MODELS
    code = next(code for name, code in SNIPPETS
                if name.startswith('README.md') and '_delete_' in code)
    code = code.replace('_delete_=True,', '')
    cfg = Config.fromfile(str(snippet_file(scratch, 'no_delete', code)))
    assert cfg.model.auxiliary_head.in_index == 2  # FCNHead's, merged in
    with pytest.raises(TypeError, match=r'in_index must be a non-empty '
                       r'list.*got 2 \(int\).*_delete_=True'):
        MODELS.build(cfg.model)
