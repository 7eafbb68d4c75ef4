"""A study: how to build its :class:`~.spec.ExperimentSpec` and how to
render its report; the registry the experiment tool chooses from."""
import importlib
import os.path as osp
from dataclasses import dataclass
from typing import Any, Callable, Dict, List

from .runner import collect, read_json, run_baselines, write_json
from .spec import ExperimentSpec, cell_name

__all__ = ['Study', 'STUDIES', 'get_study', 'report', 'DISCUSSION_MARKER']

#: :func:`report` keeps everything from this line on in an existing page
DISCUSSION_MARKER = '<!-- discussion: kept when the page is re-rendered -->'


@dataclass(frozen=True)
class Study:
    """A configuration of the harness.

    Attributes:
        build: ``build(**overrides) -> ExperimentSpec``; the overrides are
            spec fields (seeds, epochs, ratios, work_dir, ...).
        render: ``render(spec, runs, baselines) -> (markdown, data)``: the
            report page and the JSON written next to it (summary, plots).
        doc (str): One line for ``--help``.
    """
    build: Callable[..., ExperimentSpec]
    render: Callable[[ExperimentSpec, List[Dict[str, Any]], Dict[str, Any]],
                     Any]
    doc: str = ''


#: study name -> module of :mod:`.studies` (imported on demand)
STUDIES = {
    'protocol': 'protocol',
    'ratio_sweep': 'ratio_sweep',
    'ibot': 'ibot',
    'simmim': 'simmim',
    'bootmae': 'bootmae',
    'cmae': 'cmae',
}


def get_study(name: str) -> Study:
    """The :class:`Study` of ``name`` (a key of :data:`STUDIES`)."""
    if name not in STUDIES:
        raise KeyError(f'unknown study {name!r}; studies: {sorted(STUDIES)}')
    return importlib.import_module(
        f'{__package__}.studies.{STUDIES[name]}').STUDY


def _merge_runs(stored: List[Dict[str, Any]],
                new: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """``stored`` runs with ``new`` ones replacing those of the same cell
    (others appended): a partial run never drops stored cells.

    Raises:
        ValueError: A new run's epochs or images differ from the stored
            runs' (another experiment; write it to another results file).
    """
    def key(run: Dict[str, Any]) -> str:
        return run.get('cell') or cell_name(run['arm'], run.get('ratio'),
                                            run['seed'])

    sizes = {(r.get('epochs'), r.get('images', 0)) for r in stored}
    for run in new:
        if sizes and (run.get('epochs'), run.get('images', 0)) not in sizes:
            raise ValueError(
                f'{key(run)}: epochs/images {run.get("epochs")}/'
                f'{run.get("images", 0)} differ from the stored results\' '
                f'{sorted(sizes)}; write it to another results file '
                '(--results)')
    merged = {key(r): r for r in stored}
    merged.update((key(r), r) for r in new)
    return list(merged.values())


def _merge_baselines(stored: Dict[str, Any],
                     new: Dict[str, Any]) -> Dict[str, Any]:
    """``stored`` baselines updated by ``new`` key by key (a per-seed
    baseline measured for fewer seeds keeps the stored seeds)."""
    out = dict(stored)
    for name, value in new.items():
        old = out.get(name)
        out[name] = ({**old, **value} if isinstance(old, dict)
                     and isinstance(value, dict) else value)
    return out


def report(study: Study, spec: ExperimentSpec,
           run_baseline: bool = True) -> str:
    """Collect the finished cells, render the page (keeping a hand-written
    discussion from :data:`DISCUSSION_MARKER` on) and write the results
    JSON; the page's path.

    The cells and baselines already in ``spec.results`` are kept (merged
    by cell name, the work dir's newer), so a partial run never drops
    stored results; with no cell in the work dir the page is re-rendered
    from ``spec.results`` alone (no baseline computed)."""
    runs = collect(spec)
    stored = (read_json(spec.results) if spec.results else None) or {}
    baselines = (run_baselines(spec) if run_baseline
                 and (runs or not stored.get('runs')) else {})
    runs = _merge_runs(stored.get('runs') or [], runs)
    baselines = _merge_baselines(stored.get('baselines') or {}, baselines)
    text, data = study.render(spec, runs, baselines)
    if spec.results:
        write_json(spec.results, dict(stored, spec=spec.name, runs=runs,
                                      baselines=baselines, **data))
    if spec.page:
        old = open(spec.page).read() if osp.isfile(spec.page) else ''
        if DISCUSSION_MARKER in old:
            if DISCUSSION_MARKER in text:  # rendered with the marker
                text = text[:text.index(DISCUSSION_MARKER)]
            text = text.rstrip() + '\n\n' + old[old.index(DISCUSSION_MARKER):]
        with open(spec.page, 'w') as f:
            f.write(text)
    return spec.page
