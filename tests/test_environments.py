"""The environment fingerprint: parsers on documented outputs, the probe in a real venv, its cache, env show/diff."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shipyard.adapters.environments import probe
from shipyard.core.environments.capture import (
    SCHEMA,
    arch_list,
    cudnn_version,
    diff,
    direct_url_source,
    gpu_section,
    local_tag,
    nccl_version,
    parse_cpuinfo,
    parse_nvidia_smi,
)
from shipyard.wiring import Services
from tests.conftest import cli_env, shipyard

SRC = Path(__file__).resolve().parents[1] / "src"

# nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader (values with units;
# "[N/A]" where a field is not supported), one line per GPU.
SMI_TWO_GPUS = "NVIDIA H100 80GB HBM3, 535.129.03, 9.0, 81559 MiB\nNVIDIA H100 80GB HBM3, 535.129.03, 9.0, 81559 MiB\n"
SMI_NA = "Tesla K80, 470.82.01, [N/A], [N/A]\n"


def test_nvidia_smi_lines_become_gpu_facts() -> None:
    gpus = parse_nvidia_smi(SMI_TWO_GPUS)
    assert gpus == [{"name": "NVIDIA H100 80GB HBM3", "driver": "535.129.03", "compute_capability": "9.0",
                     "memory_mib": 81559}] * 2
    section = gpu_section(gpus)
    assert (section["driver"], section["count"]) == ("535.129.03", 2)
    assert parse_nvidia_smi(SMI_NA) == [{"name": "Tesla K80", "driver": "470.82.01", "compute_capability": None,
                                         "memory_mib": None}]
    assert parse_nvidia_smi("NVIDIA A100-SXM4-40GB, 550.54.15, 8.0, 40960 MiB\n\nNVIDIA A10, 550.54.15, 8.6, "
                            "23028 MiB")[1]["compute_capability"] == "8.6"
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        parse_nvidia_smi("No devices were found, 1")


def test_framework_build_values_are_read_as_documented() -> None:
    assert cudnn_version(90100) == "9.1.0"
    assert cudnn_version(8902) == "8.9.2"
    assert cudnn_version(None) is None
    assert nccl_version((2, 21, 5)) == "2.21.5"
    assert nccl_version(2708) == "2.7.8"
    assert nccl_version(22105) == "2.21.5"
    assert arch_list(["sm_90", "sm_50", "sm_80", "sm_86", "sm_80", "compute_90"]) == \
        ["compute_90", "sm_50", "sm_80", "sm_86", "sm_90"]
    assert arch_list(None) == []
    assert local_tag("2.3.0+cu121") == "cu121"
    assert local_tag("2.13.0+cpu") == "cpu"
    assert local_tag("2.3.0") is None


def test_cpuinfo_and_direct_url() -> None:
    text = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6338\nflags\t\t: fpu sse2 avx2 avx512f\n" \
           "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n"
    assert parse_cpuinfo(text) == {"model": "Intel(R) Xeon(R) Gold 6338", "flags": ["avx2", "avx512f", "fpu", "sse2"]}
    assert parse_cpuinfo("processor : 0\nFeatures : fp asimd\n")["flags"] == ["asimd", "fp"]
    assert direct_url_source(None) == {"kind": "index"}
    vcs = '{"url": "https://github.com/a/b", "vcs_info": {"vcs": "git", "commit_id": "abc123"}}'
    assert direct_url_source(vcs) == {"kind": "vcs", "url": "https://github.com/a/b", "vcs": "git",
                                      "commit": "abc123"}
    assert direct_url_source('{"url": "file:///src/pkg", "dir_info": {}}')["kind"] == "local path"


def _record(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schema": SCHEMA, "python": {"version": "3.11.7", "implementation": "CPython"},
        "os": {"system": "Linux", "release": "6.1", "machine": "x86_64", "libc": "glibc-2.36"},
        "cpu": {"model": "Xeon", "flags": ["avx2"], "count": 8},
        "gpu": gpu_section(parse_nvidia_smi(SMI_TWO_GPUS)),
        "frameworks": {"torch": {"version": "2.3.0+cu121", "tag": "cu121", "cuda": "12.1", "arch": ["sm_90"]}},
        "packages": {"torch": {"version": "2.3.0+cu121", "source": {"kind": "index"}},
                     "rich": {"version": "13.0", "source": {"kind": "index"}}},
    }
    base.update(over)
    return base


def test_diff_puts_ml_critical_changes_first_and_marks_them() -> None:
    a = _record()
    b = _record(packages={"torch": {"version": "2.4.0+cu124", "source": {"kind": "index"}},
                          "rich": {"version": "14.0", "source": {"kind": "index"}},
                          "numpy": {"version": "2.0.0", "source": {"kind": "index"}}},
                frameworks={"torch": {"version": "2.4.0+cu124", "tag": "cu124", "cuda": "12.4", "arch": ["sm_90"]}},
                gpu=None, gpu_absent="nvidia-smi is not on PATH")
    changes = diff(a, b)
    assert [c.critical for c in changes] == sorted((c.critical for c in changes), reverse=True)
    found = {c.what: c for c in changes}
    assert found["package torch"].critical and (found["package torch"].a, found["package torch"].b) == \
        ("2.3.0+cu121", "2.4.0+cu124")
    assert found["torch cuda"].b == "12.4" and found["gpu driver"].b == "none" and found["gpu count"].critical
    assert found["package numpy"].kind == "added" and found["package numpy"].critical
    assert not found["package rich"].critical
    assert diff(a, a) == []
    # a framework one side did not import is not a difference; its package still is compared
    assert diff(a, _record(frameworks={})) == []


def test_old_v1_records_still_diff() -> None:
    v1 = {"schema": "shipyard.environment/v1", "python": {"version": "3.11.7", "implementation": "CPython"},
          "os": {"system": "Linux", "release": "6.1", "machine": "x86_64", "libc": "glibc-2.36"},
          "cpu": {"count": 8}, "packages": {"torch": "2.3.0+cu121", "rich": "13.0"}, "frameworks": {}}
    whats = {c.what for c in diff(v1, _record())}
    assert "package torch" not in whats and "package rich" not in whats
    # what v1 never looked at (GPU, CPU model and flags) is unknown there, not a change
    assert not [w for w in whats if w.startswith(("gpu", "cpu model", "cpu flags"))], whats


def test_cpu_flags_differ_by_the_flags_only_one_side_has() -> None:
    a = _record(cpu={"model": "Xeon", "flags": ["avx2", "avx512f", "sse4_2"], "count": 8})
    b = _record(cpu={"model": "Xeon", "flags": ["avx2", "sse4_2", "amx_tile"], "count": 8})
    (change,) = diff(a, b)
    assert (change.what, change.a, change.b) == ("cpu flags (only on one side)", "avx512f", "amx_tile")


# -- the probe, for real --------------------------------------------------------------------------------

def test_a_venv_fingerprint_lists_exactly_that_venvs_packages(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    pkg = tmp_path / "pkg"
    (pkg / "tinypkg").mkdir(parents=True)
    (pkg / "tinypkg" / "__init__.py").write_text("VALUE = 1\n")
    (pkg / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "Tiny_Pkg"
        version = "1.2.3"
        """))
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}
    env.pop("PYTHONPATH", None)
    # no network: the build backend comes from the running interpreter's own site-packages
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation", str(pkg)],
                   check=True, timeout=300, env={**env, "PYTHONPATH": _setuptools_path()}, capture_output=True)
    frozen = subprocess.run([str(py), "-m", "pip", "freeze", "--all"], check=True, timeout=120, env=env,
                            capture_output=True, text=True).stdout.splitlines()
    done = subprocess.run([str(py), "-I", "-c", f"import sys; sys.path.insert(0, {str(SRC)!r}); "
                           "from shipyard.adapters.environments.probe import capture; import json; "
                           "print(json.dumps(capture()))"], check=True, timeout=120, env=env,
                          capture_output=True, text=True)
    record = json.loads(done.stdout)
    expected: dict[str, str] = {}
    for line in frozen:
        name, _, version = line.partition("==")
        if " @ " in line:
            name, _, url = line.partition(" @ ")
            version = url
        expected[name.strip().lower().replace("_", "-")] = version
    packages = record["packages"]
    # the test put Shipyard's src/ on sys.path; an editable install leaves its metadata there, which the probe
    # rightly sees as one more distribution of that interpreter
    injected = {"shipyard"} if any(SRC.glob("shipyard.*-info")) else set()
    assert set(packages) - injected == set(expected)
    assert "tiny-pkg" in packages
    for name, version in expected.items():
        if version.startswith("file:"):
            assert packages[name]["source"] == {"kind": "local path", "url": version, "editable": False}
        else:
            assert (packages[name]["version"], packages[name]["source"]["kind"]) == (version, "index")
    assert packages["tiny-pkg"]["version"] == "1.2.3"
    assert record["python"]["prefix"] == str(venv)
    assert record["gpu"] is None or record["gpu"]["count"] >= 1  # recorded from nvidia-smi, never guessed
    assert record["gpu"] is not None or record["gpu_absent"]


def _setuptools_path() -> str:
    import setuptools

    return str(Path(setuptools.__file__).parent.parent)


def test_the_cache_is_reused_until_a_package_is_installed_or_removed(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    sys.path.insert(0, str(site))
    try:
        first = probe.capture(cache)
        stored = json.loads((cache / probe.CACHE_NAME).read_text())
        # mark the cached copy: a second capture that re-read the environment would not carry the mark
        stored["record"]["cpu"]["marker"] = "from the cache"
        (cache / probe.CACHE_NAME).write_text(json.dumps(stored))
        assert probe.capture(cache)["cpu"]["marker"] == "from the cache"
        (site / "outputs.csv").write_text("a run writing beside its script does not change the packages\n")
        assert probe.capture(cache)["cpu"]["marker"] == "from the cache"
        dist = site / "late_pkg-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: late-pkg\nVersion: 0.1\n")
        after = probe.capture(cache)
        assert "marker" not in after["cpu"] and after["packages"]["late-pkg"]["version"] == "0.1"
        assert "late-pkg" not in first["packages"]
        for f in dist.iterdir():
            f.unlink()
        dist.rmdir()
        assert "late-pkg" not in probe.capture(cache)["packages"]
    finally:
        sys.path.remove(str(site))


# -- the CLI --------------------------------------------------------------------------------------------

def test_env_show_and_diff_on_two_runs(tmp_path: Path) -> None:
    env = cli_env(PYTHONPATH=str(SRC))
    shipyard("init", env=env, cwd=tmp_path)
    script = "import shipyard, sys\nif sys.argv[1] == 'np': import numpy\n" \
             "with shipyard.start_run() as r: print(r.info.run_id)\n"
    ids = [subprocess.run([sys.executable, "-c", script, arg], cwd=tmp_path, env=env, check=True, timeout=120,
                          capture_output=True, text=True).stdout.strip() for arg in ("plain", "np")]
    shown = shipyard("env", "show", ids[0][:8], env=env, cwd=tmp_path).stdout
    assert "python" in shown and "packages (" in shown and "index" in shown
    data = json.loads(shipyard("env", "show", ids[1], "--json", env=env, cwd=tmp_path).stdout)
    assert data["schema"] == SCHEMA and "numpy" in data["frameworks"]
    same = shipyard("env", "diff", ids[0], "current", env=env, cwd=tmp_path)
    assert "the same environment" in same.stdout
    changes = json.loads(shipyard("env", "diff", ids[0], ids[1], "--json", env=env, cwd=tmp_path).stdout)
    assert changes["changes"] == []  # numpy was imported in one only: not looked at in the other
    missing = shipyard("env", "show", "nope", env=env, cwd=tmp_path, check=False)
    assert missing.returncode != 0 and missing.stderr.count("\n") == 1 and "no run or model 'nope'" in missing.stderr
    missing = shipyard("env", "show", "ab", env=env, cwd=tmp_path, check=False)  # neither a run prefix nor a model
    assert missing.returncode == 3 and "no run or model 'ab'" in missing.stderr
    missing = shipyard("env", "diff", "ghost@1", "current", env=env, cwd=tmp_path, check=False)
    assert missing.returncode != 0 and "model 'ghost' not found" in missing.stderr


def test_env_show_displays_an_old_v1_record(tmp_path: Path) -> None:
    from shipyard.core.environments.capture import to_bytes
    from shipyard.wiring import from_environment
    from tests.conftest import raw_sql

    env = cli_env(PYTHONPATH=str(SRC))
    shipyard("init", env=env, cwd=tmp_path)
    run_id = subprocess.run([sys.executable, "-c", "import shipyard\nwith shipyard.start_run() as r: "
                             "print(r.info.run_id)"], cwd=tmp_path, env=env, check=True, timeout=120,
                            capture_output=True, text=True).stdout.strip()
    v1 = {"schema": "shipyard.environment/v1", "python": {"version": "3.10.1", "implementation": "CPython"},
          "os": {"system": "Linux", "release": "5", "machine": "x86_64", "libc": "glibc-2.31"},
          "cpu": {"count": 4}, "packages": {"numpy": "1.26.0"}, "frameworks": {"torch": {"version": "2.0"}}}
    svc = from_environment(env, tmp_path)
    digest = svc.store.put_bytes(to_bytes(v1))
    raw_sql(svc.settings.db_url, f"UPDATE runs SET env_digest = '{digest}' WHERE id = '{run_id}'")
    shown = shipyard("env", "show", run_id, env=env, cwd=tmp_path).stdout
    assert "shipyard.environment/v1" in shown and "3.10.1" in shown and "1.26.0" in shown
    assert "not recorded" in shown  # v1 never looked for a GPU
    changes = json.loads(shipyard("env", "diff", run_id, "current", "--json", env=env, cwd=tmp_path).stdout)
    assert changes["changes"][0] == {"what": "python", "a": "3.10.1", "b": changes["changes"][0]["b"],
                                     "critical": True, "kind": "changed"}


def test_a_hostile_cache_file_is_a_miss_never_a_hang(tmp_path: Path) -> None:
    """The cache lives in .shipyard, which a clone may carry: a FIFO, a link or garbage there is only a miss."""
    from shipyard.adapters.environments.probe import CACHE_NAME, capture

    os.mkfifo(tmp_path / CACHE_NAME)  # opened plainly, a read would wait for a writer forever
    assert capture(tmp_path)["packages"]
    for bad in (b"[1, 2]", b"\xff" * 10, b"{" * 100_000):
        (tmp_path / CACHE_NAME).unlink()
        (tmp_path / CACHE_NAME).write_bytes(bad)
        assert capture(tmp_path)["packages"]


def test_a_package_put_on_sys_path_mid_process_is_in_the_next_record(services: Services, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook's `%pip install` (here: a folder with a distribution put on sys.path) after a first run:
    the next registration records it (the demo registers a model of a package it adds this way)."""
    first = services.registry._env_digest()
    assert services.registry._env_digest() == first  # unchanged: the same record
    dist = tmp_path / "site" / "latepkg-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: latepkg\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(dist.parent))
    second = services.registry._env_digest()
    assert second != first
    with services.store.open(second) as f:
        assert json.loads(f.read())["packages"]["latepkg"]["version"] == "1.0"
