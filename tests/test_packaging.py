"""Installing mmsbam must never pull in (and so compile) mmcv; the ``lite``
extra adds mmcv-lite for environments without any mmcv."""
import importlib.metadata
import re


def _requirements():
    """(name, marker) of every requirement in mmsbam's metadata."""
    out = []
    for r in importlib.metadata.requires('mmsbam') or []:
        name = re.split(r'[<>=!~; \[]', r, 1)[0].lower()
        marker = r.split(';', 1)[1].replace(' ', '') if ';' in r else ''
        out.append((name, marker))
    return out


def test_mmsbam_requires_no_mmcv():
    required = [n for n, marker in _requirements() if not marker]
    assert 'mmpretrain' in required and 'mmengine' in required
    assert not [n for n in required if n.startswith('mmcv')], required


def test_lite_extra_is_mmcv_lite_only():
    """``pip install -e .[lite]``: mmcv-lite, never the compiled mmcv."""
    lite = [n for n, marker in _requirements() if 'extra=="lite"' in marker]
    assert lite == ['mmcv-lite']


def test_pkg_resources_available_for_mmpretrain_configs():
    """mmengine resolves ``mmpretrain::`` configs with pkg_resources."""
    requires = importlib.metadata.requires('mmsbam') or []
    assert any(r.replace(' ', '').startswith('setuptools<81') for r in requires)
    import pkg_resources  # noqa: F401
