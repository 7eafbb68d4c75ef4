"""Import a script under ``tools/`` as a module, for tests of its functions
(the scripts are not a package)."""
import importlib.util
import os.path as osp
from types import ModuleType

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(relpath: str) -> ModuleType:
    """Load ``ROOT/relpath`` (e.g. ``tools/benchmark/ratio_sweep.py``)."""
    path = osp.join(ROOT, relpath)
    name = osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
