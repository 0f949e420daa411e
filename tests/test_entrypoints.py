"""mlspec.entrypoints answers as importlib.metadata does, without importing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from mlspec import entrypoints

#: Runs in a fresh interpreter (its own sys.path): every group's entry points, by both.
COMPARE = """
import json, sys
from importlib import metadata
from mlspec import entrypoints
groups = sorted({ep.group for dist in metadata.distributions() for ep in dist.entry_points} | set(sys.argv[1:]))
ours = {g: [[e.name, e.value, entrypoints.provider(e)] for e in entrypoints.entry_points(g)] for g in groups}
theirs = {g: [[e.name, e.value, f"{e.dist.metadata['Name']}=={e.dist.version}"] for e in metadata.entry_points(group=g)]
          for g in groups}
print(json.dumps({"ours": ours, "theirs": theirs}))
"""


def _compare(pythonpath: list[Path] | None = None, *groups: str) -> dict:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    proc = subprocess.run([sys.executable, "-c", COMPARE, *groups], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _dist(site: Path, folder: str, name: str, version: str, entry_points: str | None, kind: str = "METADATA") -> None:
    info = site / folder
    info.mkdir(parents=True)
    (info / kind).write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nA long description: Name: x\n")
    if entry_points is not None:
        (info / "entry_points.txt").write_text(entry_points)


def test_every_group_of_the_installed_distributions_matches_importlib_metadata():
    report = _compare(None, "mlspec.generators")
    assert report["ours"] == report["theirs"]
    assert [name for name, _, _ in report["ours"]["mlspec.generators"]][:1] == ["argocd"]
    assert len(report["ours"]) > 3  # console_scripts, pytest11, ... and ours


def test_order_shadowing_formats_and_eggs_match_importlib_metadata(tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    group = "[mlspec.generators]\n"
    # a plugin, with comments, blank lines, spaces around '=' and a second group
    _dist(first, "Plug_In-1.0.dist-info", "plug-in", "1.0",
          "# generated\n\n[console_scripts]\nplug = plug_in.cli:main\n\n" + group + " hello =  plug_in:target \n"
          "world=plug_in.world:target\n")
    # the same distribution, older, later on the path: shadowed by the first, as importlib has it
    _dist(second, "plug_in-0.9.dist-info", "plug_in", "0.9", group + "hello = old_plug_in:target\n")
    # another distribution naming an existing target: both listed, in path order
    _dist(second, "other-2.0.dist-info", "other", "2.0", group + "hello = other:target\n")
    # an egg-info folder (setuptools' develop installs) with PKG-INFO, and one without entry points
    _dist(second, "legacy-3.0-py3.11.egg-info", "legacy", "3.0", group + "legacy = legacy:target\n", kind="PKG-INFO")
    _dist(second, "quiet-1.0.dist-info", "quiet", "1.0", None)
    # an .egg folder on the path, its metadata in EGG-INFO
    egg = tmp_path / "eggy-1.0-py3.11.egg"
    _dist(egg, "EGG-INFO", "eggy", "1.0", group + "eggy = eggy:target\n", kind="PKG-INFO")
    report = _compare([first, second, egg], "mlspec.generators")
    assert report["ours"] == report["theirs"]
    names = [(name, value, provider) for name, value, provider in report["ours"]["mlspec.generators"]]
    assert ("hello", "plug_in:target", "plug-in==1.0") in names
    assert ("hello", "old_plug_in:target", "plug_in==0.9") not in names
    assert ("hello", "other:target", "other==2.0") in names
    assert ("eggy", "eggy:target", "eggy==1.0") in names
    assert ("legacy", "legacy:target", "legacy==3.0") in names


def test_a_metadata_header_the_quick_read_cannot_take_falls_back_to_importlib(tmp_path: Path):
    site = tmp_path / "site"
    info = site / "odd-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName:\n odd\nVersion: 1.0\n")  # a folded header
    (info / "entry_points.txt").write_text("[mlspec.generators]\nodd = odd:target\n")
    report = _compare([site], "mlspec.generators")
    assert report["ours"] == report["theirs"]
    assert ["odd", "odd:target", "\nodd==1.0"] in report["ours"]["mlspec.generators"]  # importlib's reading


def test_a_zip_on_the_path_is_left_to_importlib_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\nVersion: 1.0\n")
        zf.writestr("zipped-1.0.dist-info/entry_points.txt", "[mlspec.generators]\nzipped = zipped:target\n")
    monkeypatch.syspath_prepend(str(archive))
    metadata.FastPath.__new__.cache_clear()  # importlib caches its view of each path entry
    found = entrypoints.entry_points("mlspec.generators")
    assert ("zipped", "zipped:target") in [(e.name, e.value) for e in found]
    assert [(e.name, e.value) for e in found] == [(e.name, e.value) for e in metadata.entry_points(group="mlspec.generators")]
    zipped = next(e for e in found if e.name == "zipped")
    assert entrypoints.provider(zipped) == "zipped==1.0"


def test_another_distribution_finder_is_left_to_importlib_metadata(monkeypatch: pytest.MonkeyPatch):
    class Finder:
        @staticmethod
        def find_spec(*args):
            return None

        @staticmethod
        def find_distributions(context=None):
            return iter(())

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder])
    calls = []
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points", lambda **kw: calls.append(kw) or real(**kw))
    found = entrypoints.entry_points("mlspec.generators")
    assert calls == [{"group": "mlspec.generators"}]
    assert "kubeflow" in [e.name for e in found]


def test_listing_targets_imports_no_importlib_metadata():
    code = ("import sys; from mlspec import registry; names = sorted(registry.available()); "
            "print('importlib.metadata' in sys.modules, 'email' in sys.modules, 'kubeflow' in names)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "False", "True"]
