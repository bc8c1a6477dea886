"""Export a CT-trained model for deployment: the plain segmentor only.

    python tools/export_ct.py CONFIG CHECKPOINT --out-dir exported/

writes exported/<checkpoint>_inference.py and .pth: the model without the CT
head and without ct_mmseg's runner and hooks, loadable (and runnable through
MMSeg's tools/test.py, init_model, MMSegInferencer) where ct_mmseg is not
installed, unless the model itself uses one of its modules (e.g. DCSwin's
decode head). See ct_mmseg/export.py.
"""
import argparse

from ct_mmseg.export import export_for_inference


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the CT config it was trained with '
                        '(or the config dumped into its work_dir)')
    parser.add_argument('checkpoint', help='a checkpoint of that training')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--name', help='file stem (default: the '
                        "checkpoint's + _inference)")
    args = parser.parse_args(argv)
    config, checkpoint = export_for_inference(
        args.config, args.checkpoint, args.out_dir, args.name)
    print(f'inference config: {config}\ninference checkpoint: {checkpoint}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
