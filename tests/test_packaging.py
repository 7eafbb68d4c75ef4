"""Installing mmsbam must never pull in (and so compile) mmcv."""
import importlib.metadata
import re


def test_mmsbam_requires_no_mmcv():
    requires = importlib.metadata.requires('mmsbam') or []
    names = [re.split(r'[<>=!~; \[]', r, 1)[0].lower() for r in requires]
    assert 'mmpretrain' in names and 'mmengine' in names
    assert not [n for n in names if n.startswith('mmcv')], names


def test_pkg_resources_available_for_mmpretrain_configs():
    """mmengine resolves ``mmpretrain::`` configs with pkg_resources."""
    requires = importlib.metadata.requires('mmsbam') or []
    assert any(r.replace(' ', '').startswith('setuptools<81') for r in requires)
    import pkg_resources  # noqa: F401
