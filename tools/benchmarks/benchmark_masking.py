# Copyright (c) mmsbam contributors. All rights reserved.
"""Benchmark the training cost of SBAM masking against stock MAE.

What it measures
----------------
Five MAE models are built in one process from MMPretrain's own config
(``mmpretrain::mae/mae_vit-{base,large}-p16_8xb512-amp-coslr-300e_in1k.py``):

* ``MAE``        -- the stock config (``MAEViT``, uniform random masking);
* ``SBM``        -- the same config with ``backbone.type='SBAMViT'``
  (salience-based masking, fixed ratio);
* ``AMR-sample`` -- ``SBAMViT`` with ``amr=dict(mode='sample')``: one ratio
  per image; the encoder runs a few sub-batches of similar visible counts
  (``encoder_groups``, ``--encoder-groups``), each padded to its own
  longest image with a key-padding mask;
* ``AMR-batch``  -- ``SBAMViT`` with ``amr=dict(mode='batch')``: one ratio
  per batch (the mean of the per-image ones), no padding;
* ``AMR-sample-padded`` -- ``AMR-sample`` encoded as one batch padded to
  its longest image (``encoder_groups=1``, the path before grouping).

``--temperature`` sets the SBAM variants' salience temperature: at the
paper's 1 the salience of fresh ViT-B weights is flat and every image gets
nearly the same AMR ratio, hiding the cost of per-image ratios; a large one
(768, the width) spreads it as trained weights would (realistic-salience
mode, stated in the output). The report then gives per-image against
batch-mode AMR as the median of per-round paired ratios.

SBAM adds no parameters, so the four state dicts are key-identical; the
stock model's initial weights are loaded into the other three and all four
compute the same network. Each has its own AdamW optimiser.

A *train step* is ``model.loss(inputs, None)`` (forward through backbone,
decoder neck and pixel head), ``backward``, ``optimizer.step()`` and
``zero_grad``, optionally under ``torch.autocast`` (``--amp``: float16 with a
``GradScaler`` on CUDA, bfloat16 on CPU). After ``--warmup`` rounds, the
variants are run round-robin for ``--iters`` rounds -- every round all four
step on the same batch and the starting variant rotates, so drift (thermal,
clock, other load) hits every variant alike. Each step is wall-clock timed,
with ``torch.cuda.synchronize()`` before and after on CUDA.

Reported:

* median and inter-quartile range of the step time per variant; the ratio
  of each variant's median to stock MAE's median, and the median of the
  per-round paired ratios (more robust to drift). The issue's target is SBM
  within 3% of stock MAE.
* peak memory of a step: on CUDA ``torch.cuda.max_memory_allocated`` (reset
  before every step), both absolute and above what was resident before the
  step (the four models and optimisers share the device, so the latter is
  the comparable number); on Linux CPU the peak-RSS rise of the process
  over a step (``VmHWM`` after resetting it through ``/proc/self/clear_refs``;
  approximate, since the C allocator may keep freed memory resident),
  otherwise n/a.
* the cost of salience alone, timed separately each round on the round's
  batch outside the train steps: ``masker.salience`` (embedding source),
  the ``attention`` source (block 0), the whole masking
  (``SBAMViT.mask_tokens``: salience + mask) of SBM and AMR-sample, and
  stock ``MAEViT.random_masking`` for reference, each as a fraction of the
  stock median step.
* for AMR: the masking ratio range per image, and for ``mode='sample'`` the
  padding waste ``1 - sum(num_visible) / (B * K_max)`` (fraction of encoder
  token slots that hold padding), from ``backbone.masker.last_masking`` of
  each timed step, plus the encoder length ``K_max`` against stock MAE's
  fixed ``len_keep``.

Inputs are natural photos from ``skimage.data`` (astronaut, coffee, chelsea,
rocket, ...), random-resized-cropped (scale 0.2-1.0, as MAE's pipeline) and
flipped to ``--img-size``, normalised with ImageNet mean/std; salience and
padding statistics are only meaningful on such images. ``--synthetic``
replaces them with uniform noise.

Any method (``--method-configs``)
--------------------------------
With ``--method-configs CONFIG [CONFIG ...]`` (SBAM configs
``configs/<method>/<stock name>_sbam.py``) the tool measures instead, per
config, the SBAM model against the stock model of the same config
(``model.backbone.type`` switched back, SBAM-only backbone arguments
dropped), same initial weights, on one batch made by the config's own
train pipeline from the photos (so mask-token methods get the pipeline's
masks, freshly copied for every step). A step is ``model.loss`` +
``parse_losses`` + backward + zero grads (no optimizer); after ``--warmup``
rounds, ``--rounds`` rounds alternate which model steps first. Target
networks (DALL-E, VQ-KD) keep random weights (no checkpoint is loaded).
``--tiny`` shrinks every backbone generically to 192-d, 4 blocks (Swin:
48-d stage 1, depths 1-1-4-1; decoders 192-d, 2 blocks; DALL-E 32 hidden
channels), ``--cfg-options`` overrides any key. Printed: a table of method,
stock type, SBAM type, median step ms of each, and the ratio SBAM / stock
(median and p10-p90 of the per-round paired ratios); ``--out`` writes JSON.
A config that fails to build or run is reported as failed and skipped.

The machinery lives in :mod:`mmsbam.experiments.masking_cost`.

Example::

    python tools/benchmarks/benchmark_masking.py   # CPU or GPU defaults
    python tools/benchmarks/benchmark_masking.py --device cuda --amp \\
        --iters 50 --json work_dirs/bench_masking.json
    python tools/benchmarks/benchmark_masking.py --tiny --rounds 5 \\
        --method-configs configs/mae/mae_vit-base-p16_*300e*_sbam.py \\
        configs/beit/beit_beit-base-p16_8xb256-amp-coslr-300e_in1k_sbam.py \\
        --out work_dirs/bench_methods.json
"""
import argparse
import json
import os
import shlex
import sys
import time
import warnings

import torch
from mmengine.config import DictAction

# import-time chatter of mmcv-lite / pkg_resources, unrelated to the run
warnings.filterwarnings('ignore', category=UserWarning, module='mmcv')
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmsbam.experiments.masking_cost import (  # noqa: E402
    CONFIGS, VARIANTS, PeakMemory, Trainer, build_variant_models,
    cost_alone_ops, device_name, format_method_table, make_batch,
    measure_method, method_label, photo_tensors, print_report, results_json,
    run_rounds, summarize)


def parse_args() -> argparse.Namespace:
    """Parse the command line; fill in the device-dependent defaults."""
    parser = argparse.ArgumentParser(
        description='Time MAE train steps with stock, SBM and AMR masking.')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=None,
        help='images per step (default: 64 on cuda, 8 on cpu)')
    parser.add_argument(
        '--iters',
        type=int,
        default=None,
        help='timed steps per variant (default: 40 on cuda, 6 on cpu)')
    parser.add_argument(
        '--warmup',
        type=int,
        default=None,
        help='untimed steps per variant first (default: 5 on cuda, 1 on cpu)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='autocast: float16 + GradScaler on cuda, bfloat16 on cpu')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument(
        '--arch',
        choices=sorted(CONFIGS),
        default='b',
        help='ViT-B/16 or ViT-L/16 MAE config')
    parser.add_argument(
        '--lr',
        type=float,
        default=1e-6,
        help='AdamW learning rate (small: weights stay close)')
    parser.add_argument(
        '--synthetic',
        action='store_true',
        help='uniform-noise images instead of skimage photos')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--temperature',
        type=float,
        default=None,
        help='salience temperature of the SBAM variants (default: the '
        "paper's 1); e.g. 768 (ViT-B's width) spreads the salience as "
        'trained weights do: the realistic-salience mode for AMR')
    parser.add_argument(
        '--encoder-groups',
        type=int,
        default=None,
        help='SBAMViT.encoder_groups of AMR-sample (default: the '
        "backbone's); AMR-sample-padded always uses 1")
    parser.add_argument(
        '--json',
        metavar='OUT',
        default=None,
        help='also write the results as JSON to OUT')
    _add_method_args(parser)
    args = parser.parse_args()
    on_cuda = torch.device(args.device).type == 'cuda'
    if args.batch_size is None:
        args.batch_size = 64 if on_cuda else 8
    if args.iters is None:
        args.iters = 40 if on_cuda else 6
    if args.warmup is None:
        args.warmup = 5 if on_cuda else 1
    if args.rounds is None:
        args.rounds = 20 if on_cuda else 5
    if args.rounds < 1:
        parser.error('--rounds must be >= 1')
    if args.batch_size < 1 or args.iters < 1 or args.warmup < 0:
        parser.error('--batch-size and --iters must be >= 1, --warmup >= 0')
    if args.img_size % 16:
        parser.error('--img-size must be a multiple of the patch size 16')
    return args


def _add_method_args(parser: argparse.ArgumentParser) -> None:
    """The arguments of the any-method mode (``--method-configs``)."""
    group = parser.add_argument_group(
        'any method', 'SBAM against the stock method of each SBAM config')
    group.add_argument(
        '--method-configs',
        nargs='+',
        metavar='CONFIG',
        default=None,
        help='SBAM configs (configs/<method>/*_sbam.py); replaces the MAE '
        'variants mode')
    group.add_argument(
        '--tiny',
        action='store_true',
        help='shrink each model generically: 192-d, 4-block backbone')
    group.add_argument(
        '--rounds',
        type=int,
        default=None,
        help='timed rounds, one step of each model per round '
        '(default: 20 on cuda, 5 on cpu)')
    group.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default=None,
        help='KEY=VALUE overrides merged into every config')
    group.add_argument(
        '--out', default=None, help='write the results as JSON to OUT')


def _measure_or_fail(config: str, args: argparse.Namespace) -> dict:
    """:func:`measure_method` of one config, or its error."""
    try:
        return measure_method(
            config, cfg_options=args.cfg_options, tiny=args.tiny,
            rounds=args.rounds, warmup=args.warmup,
            batch_size=args.batch_size, device=args.device, amp=args.amp,
            images='synthetic' if args.synthetic else 'photos',
            seed=args.seed)
    except Exception as err:  # report it, go on with the next method
        method = method_label(config)
        print(f'  {config}: FAILED: {type(err).__name__}: {err}', flush=True)
        return dict(method=method, config=config,
                    error=f'{type(err).__name__}: {str(err)[:200]}')


def main_methods(args: argparse.Namespace) -> None:
    """The any-method mode: measure each config, print the table and write
    ``--out``."""
    wall_start = time.perf_counter()
    command = ' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv)
    results = []
    for config in args.method_configs:
        print(f'{config}: {args.warmup} warm-up + {args.rounds} rounds, '
              f'batch {args.batch_size}{" (tiny)" if args.tiny else ""}',
              flush=True)
        results.append(_measure_or_fail(config, args))
    device = torch.device(args.device)
    print()
    print(f'command : {command}')
    print(f'device  : {device} -- {device_name(device)}; amp '
          f'{"on" if args.amp else "off"}; batch {args.batch_size}; '
          f'{args.rounds} rounds after {args.warmup} warm-up; '
          f'load average {os.getloadavg()[0]:.2f}')
    print(format_method_table(results))
    wall = time.perf_counter() - wall_start
    print(f'wall time: {wall:.1f} s')
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(command=command, device=str(device),
                           device_name=device_name(device), args=vars(args),
                           results=results, wall_time_s=wall), f, indent=2)
        print(f'results : {args.out}')


def main() -> None:
    """Build, run the rounds, summarize, report (and write the JSON)."""
    args = parse_args()
    if args.method_configs:
        main_methods(args)
        return
    device = torch.device(args.device)
    wall_start = time.perf_counter()

    models = build_variant_models(args.arch, args.img_size, device,
                                  args.seed, temperature=args.temperature,
                                  encoder_groups=args.encoder_groups)
    trainers = {
        n: Trainer(m, args.lr, args.amp, device)
        for n, m in models.items()
    }
    photos = [] if args.synthetic else photo_tensors()
    inputs = 'skimage photos' if photos else 'uniform noise'
    gen = torch.Generator().manual_seed(args.seed)
    memory = PeakMemory(device)
    print(
        f'{len(photos) or "no"} photos; {args.warmup + args.iters} rounds x '
        f'{len(VARIANTS)} variants ({args.warmup} warm-up) ...',
        flush=True)
    measured = run_rounds(
        trainers, cost_alone_ops(models),
        lambda: make_batch(photos, args.batch_size, args.img_size, gen).to(
            device, non_blocking=False), args.warmup, args.iters, memory)

    stock = models['MAE'].backbone
    groups = {n: models[n].backbone.encoder_groups
              for n in ('AMR-sample', 'AMR-sample-padded')}
    summary = summarize(measured, stock.num_patches, stock.mask_ratio,
                        groups)
    command = ' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv)
    result = print_report(args, device, summary, memory.kind, inputs,
                          command)
    wall = time.perf_counter() - wall_start
    print(f'wall time  : {wall:.1f} s')
    if args.json:
        out = results_json(args, device, summary, memory.kind, inputs,
                           command, result, wall)
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=2)
        print(f'results    : {args.json}')


if __name__ == '__main__':
    main()
