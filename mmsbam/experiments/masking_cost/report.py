"""The printed report and the JSON results of the masking-cost benchmark.

The issue's target is SBM within 3 % of stock MAE's median step time; the
verdict is inconclusive with fewer than 5 timed steps or when the step
times of MAE or SBM spread (IQR) wider than that.
"""
import argparse
import os
import platform
import re
from typing import Iterable, Any, Dict, Optional, Tuple

import torch

__all__ = [
    'TARGET', 'fmt_bytes', 'device_name', 'amp_label', 'verdict',
    'print_report', 'results_json'
]

TARGET = 0.03  # the budget for SBM over stock MAE


def fmt_bytes(n: Optional[float]) -> str:
    """``'1,234 MiB'``, or ``'n/a'`` for None."""
    return 'n/a' if n is None else f'{n / 2**20:,.0f} MiB'


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model with torch's thread count."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            match = re.search(r'^model name\s*:\s*(.+)$', f.read(), re.M)
        if match:
            name = match.group(1).strip()
    except OSError:
        pass
    return f'{name} ({torch.get_num_threads()} torch threads, ' \
           f'{os.cpu_count()} CPUs)'


def amp_label(amp: bool, device: torch.device) -> str:
    """What ``--amp`` means on ``device``."""
    if not amp:
        return 'off'
    return 'float16+GradScaler' if device.type == 'cuda' else 'bfloat16'


def verdict(variants: Dict[str, dict], iters: int) -> Tuple[str, float]:
    """PASS/FAIL of SBM against :data:`TARGET` (INCONCLUSIVE when too few
    steps or too noisy), and the larger IQR/median of MAE and SBM."""
    sbm = variants['SBM']
    result = 'PASS' if sbm['ratio_to_mae'] <= 1 + TARGET else 'FAIL'
    noise = max(variants[n]['iqr_s'] / variants[n]['median_s']
                for n in ('MAE', 'SBM'))
    if noise > TARGET or iters < 5:
        result = f'INCONCLUSIVE (would be {result})'
    return result, noise


def _print_setting(args: argparse.Namespace, device: torch.device,
                   summary: Dict[str, Any], memory_kind: str, inputs: str,
                   command: str) -> None:
    import mmpretrain
    print()
    print(f'command    : {command}')
    print(f'versions   : torch {torch.__version__}, mmpretrain '
          f'{mmpretrain.__version__}, python {platform.python_version()}')
    print(f'device     : {device} -- {device_name(device)}')
    print(f'setting    : MAE ViT-{args.arch.upper()}/16 @ {args.img_size}px '
          f'(L={summary["num_tokens"]}, mask_ratio={summary["mask_ratio"]}),'
          f' batch {args.batch_size}, amp {amp_label(args.amp, device)}, '
          f'{args.iters} timed steps/variant after {args.warmup} warm-up, '
          f'round-robin, inputs {inputs}')
    temperature = getattr(args, 'temperature', None)
    mode = ('' if temperature is None else
            ' -- realistic-salience mode: spreads the salience as trained '
            'weights do, so AMR ratios differ per image')
    print(f'salience   : temperature '
          f'{"1 (the paper)" if temperature is None else temperature}{mode}')
    print(f'memory     : {memory_kind}')
    print()


def _print_table(head: str, rows: Iterable[str]) -> None:
    """A header, a rule as long as it, then the rows."""
    print(head)
    print('-' * len(head))
    for row in rows:
        print(row)


def _print_variants(variants: Dict[str, dict]) -> None:
    _print_table(
        f'{"variant":<11} {"median s":>9} {"IQR s":>17} {"IQR/med":>7} '
        f'{"ratio":>6} {"paired":>6} {"step peak":>11} {"abs peak":>11}',
        (f'{name:<11} {s["median_s"]:>9.4f} '
         f'{s["q25_s"]:>8.4f}-{s["q75_s"]:<8.4f} '
         f'{s["iqr_s"] / s["median_s"]:>7.1%} '
         f'{s["ratio_to_mae"]:>6.3f} {s["paired_ratio_median"]:>6.3f} '
         f'{fmt_bytes(s["step_peak_above_resident_bytes"]):>11} '
         f'{fmt_bytes(s["peak_mem_bytes"]):>11}'
         for name, s in variants.items()))
    print('ratio = median / MAE median; paired = median of per-round '
          'variant/MAE; step peak = peak above memory resident before step')
    print()


def _print_cost_alone(cost_alone: Dict[str, dict]) -> None:
    _print_table(
        f'{"cost alone (same batch)":<36} {"median ms":>10} '
        f'{"% MAE step":>11}',
        (f'{op_name:<36} {s["median_s"] * 1e3:>10.2f} '
         f'{s["fraction_of_mae_step"]:>11.2%}'
         for op_name, s in cost_alone.items()))
    print()


def _print_amr(amr: Dict[str, dict], stock_keep: int) -> None:
    for name, s in amr.items():
        print(f'{name}: ratio per image {s["ratio_min"]:.3f}..'
              f'{s["ratio_max"]:.3f} (mean {s["ratio_mean"]:.3f}, mean '
              f'within-batch range {s["mean_within_batch_ratio_range"]:.3f}); '
              f'visible tokens {s["num_visible_min"]}..{s["num_visible_max"]} '
              f'(mean {s["num_visible_mean"]:.1f}, stock {stock_keep})')
        if name.startswith('AMR-sample'):
            print(
                f'  padding of one batch 1 - sum(num_visible)/(B*K_max): '
                f'pooled {s["padding_waste_pooled"]:.1%}, per step mean '
                f'{s["padding_waste_mean"]:.1%} max '
                f'{s["padding_waste_max"]:.1%}; mean K_max '
                f'{s["k_max_mean"]:.1f} = {s["encoder_slots_vs_stock"]:.2f}x '
                f'stock encoder length; encoded in <= '
                f'{s["encoder_groups"]} sub-batch(es): padding '
                f'{s["grouped_padding_pooled"]:.1%}')


def _print_per_image_cost(variants: Dict[str, dict]) -> None:
    """Per-image AMR against batch-mode AMR (same mean count), paired."""
    if 'AMR-batch' not in variants:
        return
    print('per-image / batch-mode AMR step (median of paired rounds): ' +
          ', '.join(f'{name} {variants[name]["paired_ratio_to_amr_batch"]:.3f}'
                    for name in ('AMR-sample', 'AMR-sample-padded')
                    if name in variants))


def _print_verdict(variants: Dict[str, dict], iters: int) -> str:
    result, noise = verdict(variants, iters)
    sbm = variants['SBM']
    print()
    print(f'SBM / MAE median step time = {sbm["ratio_to_mae"]:.3f} '
          f'(paired {sbm["paired_ratio_median"]:.3f}); target <= '
          f'{1 + TARGET:.2f}: {result}')
    if iters < 5:
        print('note: fewer than 5 timed steps per variant, no verdict')
    elif noise > TARGET:
        print(f'note: the step-time IQR of MAE/SBM is up to {noise:.1%} of '
              f'the median, wider than the {TARGET:.0%} target; use more '
              '--iters (or a quieter machine) for a conclusive verdict')
    return result


def print_report(args: argparse.Namespace, device: torch.device,
                 summary: Dict[str, Any], memory_kind: str, inputs: str,
                 command: str) -> str:
    """Print the report; return the verdict.

    Args:
        args (argparse.Namespace): The benchmark's command line (``arch``,
            ``img_size``, ``batch_size``, ``amp``, ``iters``, ``warmup``).
        device (torch.device): Where the steps ran.
        summary (dict): From :func:`summarize`.
        memory_kind (str): :attr:`PeakMemory.kind`.
        inputs (str): ``'skimage photos'`` or ``'uniform noise'``.
        command (str): The command line, shell-quoted.

    Returns:
        str: ``'PASS'``, ``'FAIL'`` or ``'INCONCLUSIVE (would be ...)'``.
    """
    _print_setting(args, device, summary, memory_kind, inputs, command)
    _print_variants(summary['variants'])
    _print_cost_alone(summary['cost_alone'])
    _print_amr(summary['amr'], summary['stock_len_keep'])
    _print_per_image_cost(summary['variants'])
    return _print_verdict(summary['variants'], args.iters)


def results_json(args: argparse.Namespace, device: torch.device,
                 summary: Dict[str, Any], memory_kind: str, inputs: str,
                 command: str, result: str, wall_s: float) -> Dict[str, Any]:
    """The results as written by ``--json`` (arguments as for
    :func:`print_report`, plus its verdict and the wall time)."""
    import mmpretrain
    return dict(
        command=command,
        versions=dict(
            torch=torch.__version__,
            mmpretrain=mmpretrain.__version__,
            python=platform.python_version()),
        device=str(device),
        device_name=device_name(device),
        args=vars(args),
        amp=amp_label(args.amp, device),
        inputs=inputs,
        num_tokens=summary['num_tokens'],
        memory_kind=memory_kind,
        variants=summary['variants'],
        cost_alone=summary['cost_alone'],
        amr=summary['amr'],
        target=dict(sbm_max_ratio=1 + TARGET, verdict=result),
        wall_time_s=wall_s)
