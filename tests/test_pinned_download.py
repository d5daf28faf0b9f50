"""Unpacking a pinned archive refuses members outside the target folder, also on Pythons without tarfile's filters."""
from __future__ import annotations

import io
import tarfile

import pytest

from edge.errors import EdgeError
from edge.runtime.pinned_download import extract_tar


def archive(tmp_path, *members: tuple[str, bytes | None]):
    path = tmp_path / "bundle.tar.gz"
    with tarfile.open(path, "w:gz") as bundle:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                bundle.addfile(info)
            else:
                info.size, info.mode = len(data), 0o4777
                bundle.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(params=["filter", "by hand"])
def python(request, monkeypatch):
    """This Python, and one without tarfile's extraction filters (Debian 12's 3.11.2)."""
    if request.param == "by hand":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return request.param


def test_only_the_members_under_the_prefix_are_unpacked(tmp_path, python):
    bundle = archive(tmp_path, ("pkg/examples/a.jpg", b"a"), ("pkg/setup.py", b"s"))
    extract_tar(bundle, tmp_path / "out", "pkg/examples")
    assert (tmp_path / "out" / "pkg" / "examples" / "a.jpg").read_bytes() == b"a"
    assert not (tmp_path / "out" / "pkg" / "setup.py").exists()
    assert (tmp_path / "out" / "pkg" / "examples" / "a.jpg").stat().st_mode & 0o7022 == 0


@pytest.mark.parametrize("member", [("pkg/../../escaped.txt", b"x"), ("pkg/link", None)])
def test_a_member_outside_the_folder_or_a_link_is_refused(tmp_path, python, member):
    with pytest.raises((EdgeError, tarfile.TarError)):
        extract_tar(archive(tmp_path, member), tmp_path / "out", "pkg")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out" / "pkg" / "link").exists()
