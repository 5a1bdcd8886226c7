"""The options: one table, resolved command line > environment > ini file > default.

The unit tests call ``options`` directly with plain data; the pytester tests run the plugin
as users do, to see that each source reaches it and each mistake is one usage error.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import A_MOUNT, NO_HOME, Unprivileged, linux_only, posix_only, run_in_a_mount

import pytest_edgeprofiles
from pytest_edgeprofiles._options import (
    OPTIONS,
    Option,
    OptionError,
    Settings,
    env_of,
    option,
    resolve,
    resolve_all,
)

pytest_plugins = ["pytester"]


@pytest.fixture
def root(pytester: pytest.Pytester) -> Path:
    return pytester.path / "profiles"


# -- the table and the settings ----------------------------------------------------------------


def test_settings_fields_are_the_option_keys() -> None:
    names = list(Settings._fields)
    assert names[: len(OPTIONS)] == [opt.key for opt in OPTIONS]


def test_names_are_unique_and_derived_from_the_key() -> None:
    for attribute in ("key", "flag", "env", "ini"):
        names = [getattr(opt, attribute) for opt in OPTIONS if getattr(opt, attribute)]
        assert len(names) == len(set(names)), attribute
    assert option("profile_wait").ini == "edge_profile_wait"
    assert option("profile_retention_count").name == "edge_profile_retention_count"
    assert env_of("profile_root") == "EDGEPROFILES_ROOT"
    with pytest.raises(KeyError):
        env_of("profile_retention_count")


def test_importing_options_imports_no_heavy_module() -> None:
    # The package's __init__ is skipped: what options.py itself imports is measured.
    code = f"""
import sys, types
package = types.ModuleType("pytest_edgeprofiles")
package.__path__ = [{str(Path(pytest_edgeprofiles.__file__).parent)!r}]
sys.modules["pytest_edgeprofiles"] = package
import pytest_edgeprofiles._options
heavy = ("pytest", "psutil", "filelock", "pytest_edgeprofiles.profile_manager")
print(sorted(name for name in heavy if name in sys.modules))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- resolution, with plain data ---------------------------------------------------------------


def _resolve(key: str, cli: str | None = None, env: str | None = None, ini: str | None = None,
             inipath: Path | None = None) -> object:  # fmt: skip
    opt = option(key)
    environ = {} if env is None or opt.env is None else {opt.env: env}
    return resolve(opt, cli=cli, ini=ini, inipath=inipath, environ=environ)


def test_command_line_beats_environment_beats_ini_beats_default(tmp_path: Path) -> None:
    ini = tmp_path / "pytest.ini"
    assert _resolve("max_profiles", cli="5", env="4", ini="3", inipath=ini) == 5
    assert _resolve("max_profiles", env="4", ini="3", inipath=ini) == 4
    assert _resolve("max_profiles", ini="3", inipath=ini) == 3
    assert _resolve("max_profiles") == 8
    assert _resolve("base_profile") is None


def test_browsers_started_ahead_are_the_plugins_to_decide_unless_counted() -> None:
    assert _resolve("prelaunch") is None  # auto
    assert _resolve("prelaunch", env="AUTO") is None
    assert _resolve("prelaunch", cli="0", env="auto") == 0
    assert _resolve("prelaunch", ini="2", inipath=Path("tox.ini")) == 2


def test_empty_environment_or_ini_means_unset_but_an_empty_flag_is_an_error(
    tmp_path: Path,
) -> None:
    assert _resolve("profile_wait", env="", ini="", inipath=tmp_path / "tox.ini") == 300.0
    with pytest.raises(OptionError, match=r"invalid value '' on the command line.*empty"):
        _resolve("profile_wait", cli="", env="7")


def test_a_relative_path_in_the_ini_file_is_relative_to_that_file(tmp_path: Path) -> None:
    ini = tmp_path / "conf" / "pytest.ini"
    assert _resolve("profile_root", ini="profiles", inipath=ini) == str(
        tmp_path / "conf" / "profiles"
    )


def test_an_error_names_option_value_and_source(tmp_path: Path) -> None:
    ini = tmp_path / "tox.ini"
    with pytest.raises(OptionError) as caught:
        _resolve("max_profiles", env="lots", ini="3", inipath=ini)
    assert str(caught.value) == (
        "--edge-max-profiles: invalid value 'lots' in the environment "
        "(EDGEPROFILES_MAX_PROFILES): expected a whole number from 1 to 16"
    )
    assert isinstance(caught.value, ValueError)
    with pytest.raises(OptionError, match=r"^edge_profile_retention_count: invalid value '-1' in "):
        _resolve("profile_retention_count", ini="-1", inipath=ini)


def test_resolve_all_reads_every_option_once() -> None:
    asked: list[str] = []

    def cli(opt: Option) -> str | None:
        asked.append(opt.key)
        return "2" if opt.key == "max_profiles" else None

    values = resolve_all(cli=cli, ini=lambda opt: None, inipath=None, environ={})
    assert asked == [opt.key for opt in OPTIONS] == list(values)
    assert values["max_profiles"] == 2 and values["profile_retention"] == "failed"


# -- through the plugin ------------------------------------------------------------------------


def test_environment_beats_ini_and_command_line_beats_both(
    pytester: pytest.Pytester, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(f"[pytest]\nedge_max_profiles = 3\nedge_profile_root = {root}\n")
    monkeypatch.setenv("EDGEPROFILES_MAX_PROFILES", "4")
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    result.stdout.fnmatch_lines(["edgeprofiles: max 4 profiles*"])
    result = pytester.runpytest_subprocess("-p", "no:xdist", "--edge-max-profiles=5")
    result.stdout.fnmatch_lines(["edgeprofiles: max 5 profiles*"])
    monkeypatch.delenv("EDGEPROFILES_MAX_PROFILES")
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    result.stdout.fnmatch_lines(["edgeprofiles: max 3 profiles*"])


POSIX_HOMES = posix_only(NO_HOME)


@pytest.mark.parametrize(
    ("args", "env", "ini", "expected"),
    [
        (["--edge-max-profiles=0"], {}, "", "--edge-max-profiles: invalid value '0' on the command line*from 1 to 16"),
        (["--edge-max-profiles=17"], {}, "", "--edge-max-profiles: invalid value '17' on the command line*"),
        ([], {"EDGEPROFILES_MAX_PROFILES": "lots"}, "", "--edge-max-profiles: invalid value 'lots' in the environment (EDGEPROFILES_MAX_PROFILES)*"),
        ([], {}, "edge_max_profiles = 17", "--edge-max-profiles: invalid value '17' in *tox.ini (edge_max_profiles)*"),
        (["--edge-profile-retention=some"], {}, "", "--edge-profile-retention: invalid value 'some'*one of all, failed, none"),
        ([], {"EDGEPROFILES_WAIT": "-1"}, "", "--edge-profile-wait: invalid value '-1' in the environment*"),
        (["--edge-profile-size-limit=0"], {}, "", "--edge-profile-size-limit: invalid value '0'*"),
        (["--edge-base-profile=missing"], {}, "", "--edge-base-profile: invalid value 'missing'*not found*"),
        ([], {}, "edge_base_profile = nowhere", "--edge-base-profile: invalid value 'nowhere' (*nowhere) in *tox.ini*not found*"),
        ([], {}, "edge_profile_retention_count = -1", "edge_profile_retention_count: invalid value '-1'*"),
        (["--edge-profile-root=afile"], {}, "", "--edge-profile-root: invalid value 'afile'*not a directory*"),
        (["--edge-max-profiles="], {}, "", "--edge-max-profiles: invalid value '' on the command line*the value is empty"),
        (["--edge-profile-root=afile/sub"], {}, "", "--edge-profile-root: invalid value 'afile/sub'*afile is a file, not a directory"),
        (["--edge-download-root=afile/sub"], {}, "", "--edge-download-root: invalid value 'afile/sub'*afile is a file, not a directory"),
        ([], {"EDGEPROFILES_ROOT": " "}, "", "--edge-profile-root: invalid value ' ' in the environment (EDGEPROFILES_ROOT): the value is blank"),
        ([], {"EDGEPROFILES_DOWNLOAD_ROOT": "  "}, "", "--edge-download-root: invalid value '  ' in the environment (EDGEPROFILES_DOWNLOAD_ROOT): the value is blank"),
        (["--edge-prelaunch=-1"], {}, "", "--edge-prelaunch: invalid value '-1' on the command line*from 0 to 16"),
        ([], {"EDGEPROFILES_PRELAUNCH": "many"}, "", "--edge-prelaunch: invalid value 'many' in the environment (EDGEPROFILES_PRELAUNCH)*"),
        ([], {}, "edge_prelaunch = 17", "--edge-prelaunch: invalid value '17' in *tox.ini (edge_prelaunch)*"),
        # One wording for a value of the wrong kind, wherever it is given.
        ([], {}, "edge_max_profiles = abc", "--edge-max-profiles: invalid value 'abc' in *tox.ini (edge_max_profiles): expected a whole number from 1 to 16"),
        ([], {}, "edge_profile_wait = soon", "--edge-profile-wait: invalid value 'soon' in *tox.ini (edge_profile_wait): expected a number of seconds >= 0"),
        ([], {}, "edge_headed = maybe", "--edge-headed: invalid value 'maybe' in *tox.ini (edge_headed): expected 1/0, true/false, yes/no or on/off"),
        # A user with no home: pathlib's RuntimeError, once an INTERNALERROR.
        pytest.param(["--edge-profile-root=~no-such-user-ep/p"], {}, "", "--edge-profile-root: invalid value '~no-such-user-ep/p' on the command line (--edge-profile-root): no home directory for ~no-such-user-ep", marks=POSIX_HOMES),
        pytest.param([], {"EDGEPROFILES_BASE_PROFILE": "~no-such-user-ep/b"}, "", "--edge-base-profile: invalid value '~no-such-user-ep/b' in the environment (EDGEPROFILES_BASE_PROFILE): no home directory for ~no-such-user-ep", marks=POSIX_HOMES),
        pytest.param([], {}, "edge_output = ~no-such-user-ep/o", "--edge-output: invalid value '~no-such-user-ep/o' in *tox.ini (edge_output): no home directory for ~no-such-user-ep", marks=POSIX_HOMES),
    ],
)  # fmt: skip
def test_usage_errors_name_option_value_and_source(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    ini: str,
    expected: str,
) -> None:
    root = pytester.path / "profiles"
    pytester.path.joinpath("afile").write_text("")
    pytester.makefile(".ini", tox=f"[pytest]\n{ini}\n")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile("def test_x(edge_profile): pass")
    if "EDGEPROFILES_ROOT" not in env and not any(
        a.startswith("--edge-profile-root") for a in args
    ):
        args = [f"--edge-profile-root={root}", *args]
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {expected}"])
    assert "Traceback" not in result.stderr.str()
    assert not root.exists()
    assert not (pytester.path / " ").exists() and not (pytester.path / "  ").exists()


def test_help_works_even_with_a_bad_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEPROFILES_MAX_PROFILES", "lots")
    result = pytester.runpytest_subprocess("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*--edge-max-profiles*", "*EDGEPROFILES_MAX_PROFILES*"])


# -- a root that cannot be made: the usage error, never an INTERNALERROR -------------------


def _usage_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "INTERNALERROR" not in result.stderr and "Traceback" not in result.stderr
    return result.stderr


@linux_only(A_MOUNT)
def test_a_root_on_a_read_only_file_system_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(edge_profile): pass")
    err = _usage_error(
        run_in_a_mount(
            pytester, "ro", "-p", "no:cacheprovider", "--edge-profile-root={mnt}/profiles", env={}
        )
    )
    assert (
        f"ERROR: --edge-profile-root: invalid value '{pytester.path}/mnt/profiles' on the "
        f"command line (--edge-profile-root): {pytester.path}/mnt is on a read-only file system"
    ) in err


@linux_only("/proc, which takes no folder yet passes every look at its flags and rights")
def test_a_root_under_proc_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(edge_profile): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--edge-profile-root=/proc/x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --edge-profile-root: invalid value '/proc/x' on the command line "
         "(--edge-profile-root): cannot make a folder in /proc (*)"]
    )  # fmt: skip


@linux_only(A_MOUNT)
def test_a_default_root_that_cannot_be_made_fails_the_test_naming_why(
    pytester: pytest.Pytester,
) -> None:
    # No option names the root, and no check at start-up foresees it: the temp dir's disk is
    # full (three inodes: Python's own probe of the temp dir and the root fit, the run's do
    # not). Found when the first test asks for a profile: that test fails, saying why.
    pytester.makepyfile("def test_x(edge_profile): pass\ndef test_plain(): pass")
    result = run_in_a_mount(
        pytester, "size=1m,nr_inodes=3", "-p", "no:cacheprovider", "-p", "no:xdist",
        env={"TMPDIR": "{mnt}"},
    )  # fmt: skip
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert "INTERNALERROR" not in result.stdout + result.stderr
    assert "1 passed, 1 error" in result.stdout
    assert (
        f"edgeprofiles: cannot make the run folder under {pytester.path}/mnt/edgeprofiles-of-"
    ) in result.stdout
    assert "(--edge-profile-root): [Errno 28] No space left on device" in result.stdout


@posix_only("chmod 0555 cannot make a folder read-only on Windows")
def test_a_root_in_a_folder_we_may_not_write_is_a_usage_error(
    pytester: pytest.Pytester, unprivileged: Unprivileged
) -> None:
    locked = unprivileged.folder / "locked"
    locked.mkdir()
    (unprivileged.folder / "test_x.py").write_text("def test_x(edge_profile): pass\n")
    locked.chmod(0o555)
    result = unprivileged.run(
        "import sys, pytest; sys.exit(pytest.main(sys.argv[1:]))",
        "-p", "no:cacheprovider", f"--edge-profile-root={locked}/profiles", "test_x.py",
    )  # fmt: skip
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert f"{locked} is not writable" in result.stderr
    assert os.listdir(locked) == []


@pytest.mark.parametrize("xdist", [["-p", "no:xdist"], ["-n", "2"]])
def test_a_misspelled_ini_option_is_told_the_option_meant(
    pytester: pytest.Pytester, root: Path, xdist: list[str]
) -> None:
    pytester.makeini(f"[pytest]\nedge_max_profile = 3\nedge_profile_root = {root}\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess(*xdist)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["*unknown ini option edge_max_profile; did you mean edge_max_profiles?*"]
    )
    assert result.stdout.str().count("did you mean") == 1


def test_the_readme_writes_path_and_value_options_with_an_equals_sign() -> None:
    # ``--edge-base-profile ~/x``: pytest takes the path for a test argument when it picks the
    # rootdir (and writes its cache there); ``--edge-base-profile=~/x`` is read as the option's.
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    valued = [opt.flag for opt in OPTIONS if opt.flag and not opt.const]
    spaced = [
        match[0]
        for flag in valued
        for match in re.finditer(rf"{re.escape(flag)} [^\s`|(]+", readme)
    ]
    assert spaced == []
