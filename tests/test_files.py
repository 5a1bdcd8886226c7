"""Filesystem mechanics: copying a tree (long paths, holes, what changes while we copy)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import posix_only

from pytest_edgeprofiles import ProfileManager
from pytest_edgeprofiles._system import files

#: How the deep folders are made and read back: Windows has no O_DIRECTORY, dir_fd nor fwalk.
RELATIVE_TO_A_FOLDER = "folders opened, made and walked relative to an open one (dir_fd)"
PATH_MAX = 4096
LONG_NAME = "d" * 250


def deep_folders(top: Path, levels: int) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Make ``levels`` nested folders of long names below ``top`` relative to open folders
    (their full path may pass PATH_MAX); yield each one's open fd and parts (closed after)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    parts: tuple[str, ...] = ()
    try:
        for level in range(levels):
            name = f"{level}{LONG_NAME}"
            os.mkdir(name, 0o700, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd, parts = inner, (*parts, name)
            yield fd, parts
    finally:
        os.close(fd)


def write_at(fd: int, name: str, data: bytes) -> None:
    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=fd)
    try:
        os.write(out, data)
    finally:
        os.close(out)


def tree(top: Path) -> dict[str, bytes | str]:
    """Every file (content) and link (target) below ``top``, read relative to open folders."""
    found: dict[str, bytes | str] = {}
    for folder, dirs, names, fd in os.fwalk(top):
        rel = os.path.relpath(folder, top)
        for name in [*names, *[d for d in dirs if os.path.islink(os.path.join(folder, d))]]:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                found[os.path.join(rel, name)] = os.readlink(name, dir_fd=fd)
                continue
            src = os.open(name, os.O_RDONLY, dir_fd=fd)
            try:
                found[os.path.join(rel, name)] = os.read(src, st.st_size + 1)
            finally:
                os.close(src)
    return found


def long_prefix(top: Path, length: int) -> Path:
    """Nested folders below ``top`` whose path is about ``length`` characters long."""
    levels = max(0, (length - len(str(top))) // (len(LONG_NAME) + 2))
    *_, (_, parts) = deep_folders(top, levels) if levels else [(0, ())]
    return top.joinpath(*parts)


def deep_base(base: Path, levels: int) -> None:
    """A user data dir with files all the way down a chain of long folder names."""
    (base / "Default").mkdir(parents=True)
    (base / "Local State").write_text("{}")
    (base / "Default" / "Preferences").write_text("{}")
    for fd, parts in deep_folders(base / "Default", levels):
        write_at(fd, "data", f"level {len(parts)}".encode() * 100)
        os.symlink("data", "link", dir_fd=fd)


@posix_only(RELATIVE_TO_A_FOLDER)
@pytest.mark.parametrize(
    ("source_prefix", "levels"),
    [(3000, 5), (0, 20)],
    ids=["the source passes PATH_MAX", "both sides pass PATH_MAX"],
)
def test_folders_past_path_max_are_copied_whole(
    tmp_path: Path, source_prefix: int, levels: int
) -> None:
    src, dst = long_prefix(tmp_path, source_prefix) / "src", tmp_path / "dst"
    deep_base(src, levels)
    dst.mkdir()
    assert len(str(src)) + levels * (len(LONG_NAME) + 2) > PATH_MAX
    copied = files.copy_tree(src, dst)
    assert tree(dst) == tree(src)
    assert copied == sum(len(v) for v in tree(src).values() if isinstance(v, bytes))


@posix_only(RELATIVE_TO_A_FOLDER)
def test_a_clone_of_a_base_with_folders_past_path_max_has_every_file(tmp_path: Path) -> None:
    # The base's own path is usable, its deepest folders' paths are not: once they were
    # passed over as if they had vanished, and the clone silently lacked their files.
    base = long_prefix(tmp_path, 3000) / "User Data"
    deep_base(base, 5)
    assert len(str(base)) < PATH_MAX < len(str(base)) + 5 * (len(LONG_NAME) + 2)
    m = ProfileManager(str(base), root=tmp_path / "root")
    try:
        clone = Path(m.create_profile("gw0"))
        wanted = {k: v for k, v in tree(base).items() if k != "Default/Preferences"}
        got = tree(clone)
        assert {k: got.get(k) for k in wanted} == wanted
        assert m.validate_profile("gw0")
    finally:
        m.cleanup_all_profiles()


@posix_only(RELATIVE_TO_A_FOLDER)
def test_a_base_whose_own_path_passes_path_max_is_cloned_whole_or_refused_loudly(
    tmp_path: Path,
) -> None:
    for fd, parts in deep_folders(tmp_path, 17):
        if len(parts) == 17:
            os.mkdir("User Data", dir_fd=fd)
            inner = os.open("User Data", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            write_at(inner, "Local State", b"{}")
            os.close(inner)
    base = tmp_path.joinpath(*parts, "User Data")
    assert len(str(base)) > PATH_MAX
    try:
        m = ProfileManager(str(base), root=tmp_path / "root")
    except OSError as exc:
        assert exc.errno == errno.ENAMETOOLONG, exc  # names the path and why it cannot be used
        return
    try:  # an OS that takes such paths: the clone must then be whole
        assert tree(Path(m.create_profile("gw0")))["./Local State"] == b"{}"
    finally:
        m.cleanup_all_profiles()


@posix_only("st_blocks, and a hole made by seeking past a file's end")
def test_a_sparse_file_stays_sparse_in_the_clone(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    sparse = src / "sparse.bin"
    data = os.urandom(4096)
    with open(sparse, "wb") as fh:
        fh.seek(50 * 1024 * 1024)
        fh.write(data)
        fh.truncate(100 * 1024 * 1024)
    if sparse.stat().st_blocks * 512 >= 1024 * 1024:
        pytest.skip("this file system does not keep holes in files")
    assert files.copy_tree(src, dst) == 100 * 1024 * 1024  # what it holds, as before
    copy = dst / "sparse.bin"
    assert copy.stat().st_size == 100 * 1024 * 1024
    assert copy.stat().st_blocks * 512 < 1024 * 1024, "the holes were filled with zeros"
    with open(sparse, "rb") as a, open(copy, "rb") as b:
        while chunk := a.read(1 << 20):
            assert b.read(1 << 20) == chunk


@posix_only("FIFOs (os.mkfifo) and symlinks")
def test_entries_changed_while_we_copy_are_passed_over_never_followed(tmp_path: Path) -> None:
    # A live base changes under the copy: what vanished or was swapped since the folder was
    # listed is left out; a link swapped in is never followed, a FIFO never opened for ever.
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    for folder in (src / "sub" / "gone_dir", src / "sub" / "linked_dir", outside, dst):
        folder.mkdir(parents=True)
    (outside / "secret").write_bytes(b"secret")
    names = ("kept.txt", "gone.txt", "fifo.txt", "linked.txt")
    for name in names:
        (src / "sub" / name).write_bytes(name.encode())
    (src / "sub" / "gone_dir" / "x").write_bytes(b"x")
    changed: list[str] = []

    def change_the_others(parts: tuple[str, ...], is_dir: bool) -> bool:
        if len(parts) == 2 and not changed:  # "sub" is listed: change all but this entry
            changed.append(parts[1])
            sub = src / "sub"
            for name, change in {
                "gone.txt": lambda p: p.unlink(),
                "gone_dir": lambda p: (p / "x").unlink() or p.rmdir(),
                "fifo.txt": lambda p: p.unlink() or os.mkfifo(p),
                "linked.txt": lambda p: p.unlink() or p.symlink_to(outside / "secret"),
                "linked_dir": lambda p: p.rmdir() or p.symlink_to(outside),
            }.items():
                if name != parts[1]:
                    change(sub / name)
        return False

    files.copy_tree(src, dst, change_the_others)
    copied = tree(dst)
    assert b"secret" not in copied.values()
    assert copied.get("sub/kept.txt") == b"kept.txt"
    assert not any(stat.S_ISFIFO(p.lstat().st_mode) for p in dst.rglob("*"))
    assert "sub/gone.txt" not in copied or changed == ["gone.txt"]


def test_a_copy_that_fails_names_the_whole_path_it_failed_on(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "Default" / "Local Storage").mkdir(parents=True)
    (src / "Default" / "Local Storage" / "000003.log").write_text("data")
    (src / "Local State").write_text("{}")
    dst.mkdir()
    (dst / "Local State").write_text("in the way")
    with pytest.raises(FileExistsError) as info:
        files.copy_tree(src, dst)
    # Relative to an open folder the OS names only "Local State"; the error names it whole.
    where = dst / "Local State"
    assert info.value.filename in (str(where), files.long_path(where))
