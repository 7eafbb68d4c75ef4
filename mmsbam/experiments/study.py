"""A study: how to build its :class:`~.spec.ExperimentSpec` and how to
render its report; the registry the experiment tool chooses from."""
import importlib
import os.path as osp
from dataclasses import dataclass
from typing import Any, Callable, Dict, List

from .runner import collect, read_json, run_baselines, write_json
from .spec import ExperimentSpec

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
    'bootmae': 'bootmae', 'cmae': 'cmae',
}


def get_study(name: str) -> Study:
    """The :class:`Study` of ``name`` (a key of :data:`STUDIES`)."""
    if name not in STUDIES:
        raise KeyError(f'unknown study {name!r}; studies: {sorted(STUDIES)}')
    return importlib.import_module(
        f'{__package__}.studies.{STUDIES[name]}').STUDY


def report(study: Study, spec: ExperimentSpec,
           run_baseline: bool = True) -> str:
    """Collect the finished cells, render the page (keeping a hand-written
    discussion from :data:`DISCUSSION_MARKER` on) and write the results
    JSON; the page's path.

    With no finished cell in the work dir the page is re-rendered from
    ``spec.results`` (its runs and baselines; no baseline computed); a
    results file holding more runs than were collected is not
    overwritten."""
    runs = collect(spec)
    stored = (read_json(spec.results) if spec.results else None) or {}
    if not runs and stored.get('runs'):
        runs, baselines = stored['runs'], stored.get('baselines') or {}
    else:
        baselines = run_baselines(spec) if run_baseline else {}
    if len(stored.get('runs') or []) > len(runs):
        print(f'{spec.results} holds {len(stored["runs"])} runs, the work '
              f'dir {len(runs)}: neither it nor the page is rewritten '
              '(write to another --results/--page)')
        return spec.page
    text, data = study.render(spec, runs, baselines)
    if spec.results:
        write_json(spec.results, dict(spec=spec.name, runs=runs,
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
