"""Run a study of the experiment harness (``mmsbam/experiments``): every
cell pre-trained and evaluated (finished cells skipped, an interrupted one
resumed), then its report re-rendered from the stored results.

Examples:
    python tools/benchmarks/experiment.py protocol            # everything
    python tools/benchmarks/experiment.py protocol --dry-run  # commands
    python tools/benchmarks/experiment.py ratio_sweep --report-only
    python tools/benchmarks/experiment.py protocol --report-only
    python tools/benchmarks/experiment.py protocol --cells mae_r0.75_s0
    python tools/benchmarks/experiment.py ratio_sweep --arms sbm \
        --cfg-options model.backbone.temperature=64 --work-dir W \
        --results W/results.json --page ''
"""
import argparse
import os.path as osp
import sys
import time

from mmsbam.experiments import get_study, report, run_experiment
from mmsbam.experiments.runner import (CellRun, hms, pretrain_command,
                                       show)
from mmsbam.experiments.spec import parse_ratios
from mmsbam.experiments.study import STUDIES


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('study', choices=sorted(STUDIES))
    parser.add_argument('--seeds', nargs='+', type=int)
    parser.add_argument('--epochs', type=int)
    parser.add_argument('--ratios', nargs='+',
                        help="masking ratios ('none': the configs')")
    parser.add_argument('--arms', nargs='+', help='a subset of the arms')
    parser.add_argument('--images', type=int,
                        help='training images per epoch (0: all)')
    parser.add_argument('--jobs', type=int,
                        help='cells pre-trained at once')
    parser.add_argument('--work-dir')
    parser.add_argument('--results', help='results JSON ("": none)')
    parser.add_argument('--page', help='markdown report ("": none)')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                        help='added to every cell\'s pre-training config '
                        '(e.g. model.backbone.temperature=64)')
    parser.add_argument('--cells', nargs='+',
                        help='run only these cells (names as in --dry-run)')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the pre-training commands; run nothing')
    parser.add_argument('--report-only', action='store_true',
                        help='re-render the report from stored results')
    return parser.parse_args()


def build_spec(args: argparse.Namespace):
    """The study's spec with the command line's overrides (the only place
    the namespace is read)."""
    study = get_study(args.study)
    over = {k: getattr(args, k) for k in ('epochs', 'images', 'jobs',
                                           'work_dir', 'results', 'page')
            if getattr(args, k) is not None}
    if args.seeds:
        over['seeds'] = tuple(args.seeds)
    if args.ratios:
        over['ratios'] = parse_ratios(args.ratios)
    if args.cfg_options:
        over['extra_options'] = tuple(args.cfg_options)
    spec = study.build(**over)
    if args.arms:
        spec = spec.with_(arms=tuple(spec.arm(a) for a in args.arms))
    return study, spec


def main() -> None:
    args = parse_args()
    if args.cfg_options and (args.work_dir is None or args.results is None
                             or args.page is None):
        sys.exit('--cfg-options changes what every cell trains but not its '
                 'name: give it its own --work-dir, --results and --page '
                 '("" for none), so that it neither reads back nor '
                 'overwrites the stock cells')
    study, spec = build_spec(args)
    cells = spec.cells()
    if args.cells:
        known = {c.name: c for c in cells}
        bad = [c for c in args.cells if c not in known]
        if bad:
            sys.exit(f'--cells: unknown {bad}; cells: {sorted(known)}')
        cells = [known[c] for c in args.cells]
    if args.dry_run:
        for cell in cells:
            print(f'# {cell.name}')
            print(show(pretrain_command(CellRun(
                spec, cell, osp.join(spec.work_dir, cell.name)))))
        print(f'# {len(cells)} cells')
        return
    start = time.time()
    if not args.report_only:
        run_experiment(spec, cells,
                       on_result=lambda s, _: report(study, s, False))
    page = report(study, spec)
    print(f'{spec.name}: {page or "(no page)"}, results {spec.results}; '
          f'{hms(time.time() - start)}')


if __name__ == '__main__':
    main()
