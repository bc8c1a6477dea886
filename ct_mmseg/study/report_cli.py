"""CT's mechanism and the validation curves of a study's finished runs.

The command line of ``tools/study_report.py`` (see its docstring for what it
writes): :func:`main` takes the arguments as a list (``argv``; None:
``sys.argv``) and returns the exit status. :func:`token_cosines` is the
model side of :func:`ct_mmseg.study.report.run_mechanism`, kept here so that
:mod:`.report` stays free of model code.
"""
import argparse
import os.path as osp


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('spec', help='the study file (YAML or JSON)')
    parser.add_argument('--split', default='test', choices=['val', 'test'])
    parser.add_argument('--num-images', type=int, default=24)
    parser.add_argument('--max-per-class', type=int, default=200)
    parser.add_argument('--no-cosines', action='store_true',
                        help='skip the token cosines (no model is loaded)')
    parser.add_argument('--work-root', default=None)
    parser.add_argument('--val-reference', nargs='*', default=None,
                        help='arms to compare every arm with on the final '
                        'validation mIoU, paired on common seeds (default: '
                        'the baseline arms of the study)')
    return parser.parse_args(argv)


def token_cosines(split, num_images, max_per_class):
    """``cosines(work_dir)`` for :func:`run_mechanism`: backbone space, the
    run's dumped config and final checkpoint."""
    import glob

    from ct_mmseg.visualisation import embeddings as pe
    from ct_mmseg.visualisation.similarity import similarity_rows

    def cosines(work_dir):
        config = osp.join(work_dir, 'study_test_config.py')
        if not osp.isfile(config):
            config = sorted(glob.glob(osp.join(work_dir, '*.py')))[0]
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
        model, cfg = pe.load_model(config, checkpoint)
        dataset = pe.build_dataset(cfg, split)
        tokens = pe.collect_tokens(model, cfg, dataset, num_images,
                                   max_per_class, seed=0, space='backbone',
                                   name=osp.basename(work_dir))
        rows = similarity_rows([tokens])
        return [dict(stage=r['stage'], intra=r['intra'], inter=r['inter'])
                for r in rows if r['cls'] == '(mean over classes)']
    return cosines


def main(argv=None):
    args = parse_args(argv)
    from .. import study as study_lib
    from . import report
    study = study_lib.load_spec(args.spec, work_root=args.work_root)
    results = study_lib.read_results(study)
    cosines = None if args.no_cosines else token_cosines(
        args.split, args.num_images, args.max_per_class)
    records = []
    for arm, runs in results.items():
        for seed, result in runs.items():
            print(f'[report] {arm} seed {seed}', flush=True)
            records.append(report.run_mechanism(
                result, cosines, study.work_dir(arm, seed)))
    out = study.output
    report.write_records(records, osp.join(out, 'mechanism.csv'))
    rows = report.summarize(records)
    stages = sorted({k.split('_')[0] for r in records for k in r
                     if k.endswith('_gap')})
    columns = ['mIoU', 'ct/over_clip', 'ct/grad_share'] + [
        f'{s}_{x}' for s in stages for x in ('intra', 'inter', 'gap')]
    headers = ['test mIoU', 'clip hit (frac. of steps)',
               'CT share of backbone grad'] + [
        f'{s} {x}' for s in stages for x in ('intra', 'inter', 'gap')]
    text = 'Per arm, mean ± sample std over seeds.' + ('' if cosines is None
        else f' Token cosines: backbone tokens (L2-normalised) of pure '
        f'patches, {args.split} split, first {args.num_images} images, at '
        f'most {args.max_per_class} tokens per class and stage; '
        'intra/inter = mean over classes of the mean intra-/inter-class '
        'cosine; gap = intra - inter.') + '\n\n' + \
        report.mechanism_markdown(rows, columns, headers)
    with open(osp.join(out, 'mechanism.md'), 'w') as f:
        f.write(text)
    print(text)
    references = args.val_reference
    if references is None:
        references = [a.name for a in study.arms if not a.baseline]
    val_text = ''
    for reference in references:
        if results.get(reference):
            val_text += (f'\nFinal validation mIoU against {reference}, '
                         'paired on common seeds:\n\n' + report.val_markdown(
                             report.val_comparisons(results, reference),
                             reference))
    with open(osp.join(out, 'validation.md'), 'w') as f:
        f.write(val_text)
    print(val_text)
    report.plot_val_curves(report.val_curves(results),
                           osp.join(out, 'val_curves.png'),
                           title=f'{study.name}: val mIoU (mean over seeds, '
                           'band = min..max)')
    print(f"wrote {osp.join(out, 'mechanism.csv')}, mechanism.md, "
          'val_curves.png')
    return 0

