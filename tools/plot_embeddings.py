"""Plot what CT does to the patch tokens: 2-D maps and a cosine table.

For one model (or two: ``--compare-config/--compare-checkpoint``, e.g. the
baseline and its CT run) this tool collects the pure-patch tokens of the
first ``--num-images`` images of the config's evaluation dataset, at most
``--max-per-class`` per class and stage
(:func:`ct_mmseg.visualisation.embeddings.collect_tokens`, which also says
which ``--space`` is shown), and writes into ``--out-dir``:

* ``embeddings_<name>.png``: a 2-D map (t-SNE by default) of the kept tokens
  coloured by GT class, one panel per stage; with two models also
  ``embeddings_compare.png``, the two models one above the other, stage by
  stage (:mod:`ct_mmseg.visualisation.embedding_maps`);
* ``similarity.md`` and ``similarity.csv`` (also printed): per stage and
  class the mean intra-class and inter-class cosine similarity of the same
  tokens (:mod:`ct_mmseg.visualisation.similarity`).

Example (baseline vs CT on the demo)::

    python tools/plot_embeddings.py \\
        configs/ct/demo/swin-tiny_upernet_ct_potsdam-demo.py \\
        work_dirs/ct/iter_200.pth \\
        --compare-config configs/ct/demo/swin-tiny_upernet_potsdam-demo.py \\
        --compare-checkpoint work_dirs/base/iter_200.pth \\
        --num-images 8 --out-dir work_dirs/embeddings
"""
import argparse
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)  # run from a checkout without installing

from ct_mmseg.visualisation.embedding_maps import (  # noqa: E402
    embed_model, plot_models)
from ct_mmseg.visualisation.embeddings import (  # noqa: E402
    build_dataset, collect_tokens, load_model)
from ct_mmseg.visualisation.similarity import (  # noqa: E402
    similarity_rows, write_tables)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='2-D maps and a cosine table of the patch tokens of one '
        'or two MMSeg models (e.g. baseline vs CT).')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--compare-config')
    parser.add_argument('--compare-checkpoint')
    parser.add_argument('--name', help='label of the model (default: the '
                        'config file name)')
    parser.add_argument('--compare-name')
    parser.add_argument('--split', default='val', choices=['val', 'test',
                                                            'train'],
                        help='which *_dataloader.dataset to read (default '
                        'val; train pipelines are usually random)')
    parser.add_argument('--num-images', type=int, default=8)
    parser.add_argument('--max-per-class', type=int, default=200,
                        help='bound on the tokens per class and stage')
    parser.add_argument('--space', default='auto',
                        choices=['auto', 'projection', 'backbone'])
    parser.add_argument('--method', default='tsne',
                        choices=['tsne', 'pca', 'umap'],
                        help='umap needs umap-learn (ct_mmseg[umap])')
    parser.add_argument('--perplexity', type=float, default=30.0)
    parser.add_argument('--iterations', type=int, default=1000,
                        help='t-SNE gradient steps (>= 250: the first 250 '
                        'are the early-exaggeration phase)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the token draw and of t-SNE / UMAP')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out-dir', default='work_dirs/embeddings')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='overrides applied to both configs')
    args = parser.parse_args(argv)
    if bool(args.compare_config) != bool(args.compare_checkpoint):
        parser.error('--compare-config and --compare-checkpoint go together')
    return args


def _name(config, given, taken=()):
    name = given or osp.splitext(osp.basename(config))[0]
    return f'{name}_2' if name in taken else name


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    runs = [(args.config, args.checkpoint, _name(args.config, args.name))]
    if args.compare_config:
        runs.append((args.compare_config, args.compare_checkpoint,
                     _name(args.compare_config, args.compare_name,
                           {runs[0][2]})))
    models = []
    for config, checkpoint, name in runs:
        model, cfg = load_model(config, checkpoint, args.device,
                                args.cfg_options)
        dataset = build_dataset(cfg, args.split)
        models.append(collect_tokens(
            model, cfg, dataset, args.num_images, args.max_per_class,
            args.seed, args.space, name))
        del model
    coords = [embed_model(m, args.method, args.perplexity, args.iterations,
                          args.seed) for m in models]
    written = []
    for m, xy in zip(models, coords):
        written.append(plot_models(
            [m], [xy], osp.join(args.out_dir, f'embeddings_{m.name}.png'),
            args.method))
    if len(models) == 2:
        written.append(plot_models(
            models, coords, osp.join(args.out_dir, 'embeddings_compare.png'),
            args.method))
    print(write_tables(similarity_rows(models), args.out_dir))
    for path in written + [osp.join(args.out_dir, 'similarity.md'),
                           osp.join(args.out_dir, 'similarity.csv')]:
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
