"""Layering: experiment code (``mmsbam/experiments``: the harness, its
studies, the cost benchmark) may import the library, never the reverse.
The library (masking, models, engine and its hooks, evaluation, analysis)
must run inside any MMPretrain training without the experiment harness.
"""
import ast
import os
import os.path as osp
import subprocess
import sys
from typing import Iterator, List, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PACKAGE = osp.join(ROOT, 'mmsbam')
EXPERIMENTS = 'mmsbam.experiments'

def _modules() -> Iterator[Tuple[str, str]]:
    """(dotted name, path) of every module of the package."""
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if not name.endswith('.py'):
                continue
            path = osp.join(folder, name)
            rel = osp.relpath(path, ROOT)[:-3].split(os.sep)
            if rel[-1] == '__init__':
                rel = rel[:-1]
            yield '.'.join(rel), path


def _imports(module: str, path: str) -> List[str]:
    """Absolute names of everything ``path`` imports (relative imports
    resolved against ``module``'s package), at any depth of the file."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    is_package = path.endswith('__init__.py')
    package = module if is_package else module.rpartition('.')[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - (node.level - 1)]
                parent = '.'.join(base + ([node.module] if node.module
                                          else []))
            else:
                parent = node.module or ''
            out.append(parent)
            out += [f'{parent}.{a.name}' for a in node.names]
    return out


def _is_experiment(name: str) -> bool:
    return name == EXPERIMENTS or name.startswith(EXPERIMENTS + '.')


def test_the_resolver_sees_relative_and_absolute_imports(tmp_path):
    """The scan below can fail: each spelling of an import of the harness
    is found."""
    path = tmp_path / 'm.py'
    path.write_text('from ..experiments import spec\n'
                    'from ...mmsbam.experiments.runner import run_cell\n'
                    'import mmsbam.experiments.study\n'
                    'def f():\n    from mmsbam import experiments\n')
    names = _imports('mmsbam.analysis.m', str(path))
    assert 'mmsbam.experiments.spec' in names  # relative, level 2
    assert 'mmsbam.experiments.study' in names
    assert 'mmsbam.experiments' in names  # inside a function
    assert sum(map(_is_experiment, names)) >= 4


def test_library_never_imports_the_experiments():
    bad = []
    for module, path in _modules():
        if _is_experiment(module):
            continue
        bad += [f'{module} imports {name}'
                for name in _imports(module, path) if _is_experiment(name)]
    assert not bad, '\n'.join(bad)


def test_hooks_import_no_experiment_code():
    """Importing the plugin (what ``custom_imports`` does in a training
    config: every hook registered) loads no experiment module, and no hook
    module imports one directly."""
    for module, path in _modules():
        if module.startswith('mmsbam.engine.hooks'):
            names = _imports(module, path)
            assert not [n for n in names if _is_experiment(n)]
    code = ('import sys, mmsbam, mmsbam.engine.hooks; '
            'print(sorted(m for m in sys.modules if m.startswith(%r)))'
            % EXPERIMENTS)
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, text=True,
                         capture_output=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == '[]'
