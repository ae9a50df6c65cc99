"""SBOMs and vulnerability scans, for real: ``tinyvuln``, a package built here as wheels 1.0 (vulnerable) and 1.1
(fixed), is installed for this process in turn and named by the lock of two registered versions of one model;
the advisories come from an OSV-format offline database the test writes (a zip of advisory JSONs) and from an
HTTP server on 127.0.0.1 speaking OSV's querybatch and vulns endpoints. Nothing is mocked.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib
import itertools
import json
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shipyard.adapters.supply.osv_api import OsvApi
from shipyard.adapters.supply.osv_db import OfflineDb
from shipyard.config import Settings
from shipyard.core.artifacts.digest import Digest
from shipyard.core.registry.saving import save_model
from shipyard.core.supply import debver
from shipyard.core.supply.osv import Package, check_advisory, in_range, match, semver_key, severity_of
from shipyard.core.supply.packages import deb_ecosystem, distro_of, dpkg_status, os_release, packages_of
from shipyard.errors import BackendUnavailableError, InvalidInputError
from shipyard.interfaces.cli.app import app
from shipyard.wiring import Services, build, flavor
from shipyard.wiring.supply import make_sbom, run_scan, scan_status, waive
from tests.conftest import cli_env, free_port, shipyard

pytestmark = pytest.mark.xdist_group("supply")

CRITICAL = {"id": "GHSA-aaaa-bbbb-cccc", "aliases": ["CVE-2026-10001"], "summary": "tinyvuln runs what it reads",
            "database_specific": {"severity": "CRITICAL"},
            "affected": [{"package": {"ecosystem": "PyPI", "name": "TinyVuln"}, "versions": ["1.0"],
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}]}]}
# the same vulnerability as PyPA's advisory database files it: merged with the GHSA into one finding
PYSEC = {"id": "PYSEC-2026-7", "aliases": ["GHSA-aaaa-bbbb-cccc", "CVE-2026-10001"], "details": "same",
         "affected": [{"package": {"ecosystem": "PyPI", "name": "tinyvuln"}, "versions": ["1.0"],
                       "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0.5"}, {"fixed": "1.1"}]}]}]}
HIGH = {"id": "GHSA-dddd-eeee-ffff", "summary": "tinyvuln leaks",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
        "affected": [{"package": {"ecosystem": "PyPI", "name": "TINYVULN"}, "versions": ["1.0"],
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "1.0"}]}]}]}
OTHER = {"id": "PYSEC-2020-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "numpy"}, "versions": ["0.1"],
                                             "ranges": [{"type": "ECOSYSTEM",
                                                         "events": [{"introduced": "0"}, {"fixed": "0.2"}]}]}]}
ADVISORIES = [CRITICAL, PYSEC, HIGH, OTHER]
BLOCKING_IDS = {"GHSA-aaaa-bbbb-cccc", "GHSA-dddd-eeee-ffff"}


def _wheel(folder: Path, version: str) -> Path:
    info = f"tinyvuln-{version}.dist-info"
    files = {"tinyvuln/__init__.py": f"VERSION = {version!r}\n".encode(),
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: tinyvuln\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
              for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"tinyvuln-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def write_db(folder: Path, advisories: list[dict[str, Any]], extra: dict[str, bytes] | None = None) -> Path:
    (folder / "PyPI").mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "PyPI" / "all.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for adv in advisories:
            zf.writestr(f"{adv['id']}.json", json.dumps(adv))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return folder


class OsvServer:
    """OSV's API on 127.0.0.1: ``/ok`` matches by the advisories' explicit versions, ``/garbage`` answers
    junk, ``/huge`` declares a huge body, ``/flood`` sends one without end, ``/hang`` never answers in time,
    ``/error`` answers HTTP 500."""

    def __init__(self, advisories: list[dict[str, Any]]) -> None:
        docs = {a["id"]: a for a in advisories}
        self.queries: list[Any] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, body: bytes, status: int = 200, length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)

            def _mode(self) -> bool:
                mode = self.path.split("/")[1]
                if mode == "garbage":
                    self._answer(b"<html>not json")
                elif mode == "huge":
                    self._answer(b"{", length=10 * 1024 ** 3)
                elif mode == "flood":  # no length: a body that never ends until the client stops reading
                    self.send_response(200)
                    self.end_headers()
                    try:
                        for _ in range(64):
                            self.wfile.write(b" " * 1024 * 1024)
                    except OSError:
                        pass
                elif mode == "hang":
                    time.sleep(3)
                    self._answer(b"{}")
                elif mode == "error":
                    self._answer(b"{}", status=500)
                return mode not in ("ok", "paged")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self._mode():
                    return
                server.queries.append(body)
                results = []
                for q in body["queries"]:
                    name = q["package"]["name"].lower().replace("_", "-")
                    vulns = [{"id": d["id"], "modified": "2026-01-01T00:00:00Z"} for d in docs.values()
                             if any(a["package"]["name"].lower().replace("_", "-") == name
                                    and q["version"] in a.get("versions", []) for a in d["affected"])]
                    if self.path.startswith("/paged") and len(vulns) > 1:  # one advisory a page, as OSV pages
                        page = int(q.get("page_token", "0"))
                        more = {"next_page_token": str(page + 1)} if page + 1 < len(vulns) else {}
                        vulns = vulns[page:page + 1]
                        results.append({"vulns": vulns, **more})
                        continue
                    results.append({"vulns": vulns} if vulns else {})
                self._answer(json.dumps({"results": results}).encode())

            def do_GET(self) -> None:
                if self._mode():
                    return
                vid = self.path.rsplit("/", 1)[-1]
                if vid in docs:
                    self._answer(json.dumps(docs[vid]).encode())
                else:
                    self._answer(b'{"code": 5, "message": "Bug not found"}', status=404)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Lab:
    svc: Services
    root: Path
    db: Path
    osv: OsvServer
    dataset: str

    def env(self) -> dict[str, str]:
        s = self.svc.settings
        return cli_env(SHIPYARD_HOME=str(s.home), SHIPYARD_DB_URL=s.db_url, SHIPYARD_STORE=str(s.store_path),
                       SHIPYARD_ACTOR=s.actor)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    from sklearn.dummy import DummyClassifier

    root = tmp_path_factory.mktemp("supply")
    (root / "shipyard.yaml").write_text("scan:\n  timeout: 1\n")
    sites = []
    for version in ("1.0", "1.1"):
        site = root / f"site-{version}"
        with zipfile.ZipFile(_wheel(root, version)) as zf:
            zf.extractall(site)
        sites.append(site)
    home = root / ".shipyard"
    svc = build(Settings(home=home, db_url=f"sqlite:///{root / 'meta.db'}", store_path=home / "objects",
                         actor="tester@ci"), root)
    osv = OsvServer(ADVISORIES)
    try:
        dataset = str(svc.store.put_bytes(b"sepal,petal\n1,2\n"))
        inputs = _project_inputs(svc, root, Digest.parse(dataset))
        for i, site in enumerate(sites):  # tiny@1 registered with tinyvuln 1.0 installed, tiny@2 with 1.1
            sys.path.insert(0, str(site))
            importlib.invalidate_caches()
            try:
                run = svc.tracker.start_run("train")
                svc.tracker.record_inputs(run.id, inputs)
                svc.tracker.log_metrics(run.id, {"accuracy": 0.9 + i / 100})
                model = DummyClassifier(strategy="constant", constant=1).fit([[0, 0]] * 2, [1, 1])
                save_model(flavor("sklearn"), model, root / f"m{i}", examples=[[0.0, 0.0]],
                           requirements=["tinyvuln"])
                svc.registry.register("tiny", root / f"m{i}", run_id=run.id, metrics={"accuracy": 0.9 + i / 100},
                                      trust_as_registrant=True)
                svc.tracker.end_run(run.id)
            finally:
                sys.path.remove(str(site))
                sys.modules.pop("tinyvuln", None)
        yield Lab(svc, root, write_db(root / "osvdb", ADVISORIES), osv, dataset)
    finally:
        osv.close()
        svc.close()


def _project_inputs(svc: Services, root: Path, dataset: Digest) -> dict[str, Digest]:
    """A stage's inputs as `shipyard run` records them: data/train.csv (tracked in shipyard.lock), data/prepared
    (a folder: another stage's output), src/train.py (code git tracks) and notes.txt (neither)."""
    from shipyard.core.artifacts.tree import put_path
    from shipyard.core.workspace.lockfile import Lock, PathEntry, save_lock

    save_lock(root, Lock(data={"data/train.csv": PathEntry(dataset, 16)}))
    (root / "src").mkdir()
    (root / "src" / "train.py").write_text("print('train')\n")
    (root / "prepared").mkdir()
    (root / "prepared" / "part-0.csv").write_text("1,2\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "src/train.py"], check=True)
    return {"data/train.csv": dataset, "data/prepared": put_path(svc.store, root / "prepared").digest,
            "src/train.py": svc.store.put_bytes(b"print('train')\n"), "notes.txt": svc.store.put_bytes(b"n")}


def _ids(rows: list[dict[str, Any]]) -> set[str]:
    return {r["id"] for r in rows}


# --- the core, in-process ------------------------------------------------------------------------------------


def test_ranges_versions_and_severity_follow_the_osv_schema() -> None:
    assert match(Package("PyPI", "TinyVuln", "1.0"), HIGH) is not None  # PEP 503: case does not matter
    dotted = {"id": "GHSA-x-y",
              "affected": [{"package": {"ecosystem": "PyPI", "name": "Tiny_Vuln"}, "versions": ["2"]}]}
    assert match(Package("PyPI", "tiny.vuln", "2"), dotted) is not None  # ... nor do ., _ and -
    assert match(Package("PyPI", "tinyvuln", "1.0.1"), CRITICAL) is not None  # in the range, not in the list
    assert match(Package("PyPI", "tinyvuln", "1.1"), CRITICAL) is None
    assert match(Package("PyPI", "tinyvuln", "1.1.post1"), CRITICAL) is None
    assert match(Package("PyPI", "tinyvuln", "1.0.1"), HIGH) is None  # last_affected 1.0
    assert in_range("2.5", [{"introduced": "1.0"}, {"fixed": "2.0"}, {"introduced": "3.0"}], semver_key_str) is False
    assert in_range("3.1.0", [{"introduced": "1.0.0"}, {"fixed": "2.0.0"}, {"introduced": "3.0.0"}], semver_key)
    assert in_range("1.5.0", [{"introduced": "0"}, {"limit": "1.2.0"}], semver_key) is False
    assert semver_key("1.0.0-alpha") < semver_key("1.0.0-alpha.1") < semver_key("1.0.0-beta") < semver_key("1.0.0")
    assert severity_of(CRITICAL) == "critical" and severity_of(HIGH) == "high" and severity_of(OTHER) == "unknown"
    assert severity_of({"database_specific": {"severity": "MODERATE"}}) == "medium"
    v4 = {"severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}]}
    assert severity_of(v4) == "critical"
    assert severity_of({"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/garbage"}]}) == "unknown"
    events = [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]
    deb = {"id": "DSA-5000-1", "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                                             "ranges": [{"type": "ECOSYSTEM", "events": events}]}]}
    assert match(Package("Debian:12", "openssl", "3.0.11-1~deb12u1"), deb) is not None
    assert match(Package("Debian:12", "openssl", "3.0.11-1~deb12u2"), deb) is None
    assert match(Package("Debian:11", "openssl", "3.0.11-1~deb12u1"), deb) is None


def semver_key_str(text: str) -> Any:
    return semver_key(text if text.count(".") == 2 else text + ".0")


def test_debian_versions_compare_as_dpkg_does() -> None:
    ordered = ["0.9", "1.0~rc1", "1.0", "1.0-1", "1.0-1+b1", "1.0-2", "1.0a", "1.00.1", "1.1", "1:0.1"]
    for a, b in itertools.pairwise(ordered):
        assert debver.compare(a, b) == -1, (a, b)
        assert debver.compare(b, a) == 1
    assert debver.compare("1.0", "1.00") == 0 and debver.compare("2:1.0-3", "2:1.0-3") == 0
    with pytest.raises(ValueError):
        debver.parse("not a version!")


def test_malformed_advisories_are_refused_by_shape() -> None:
    for doc in ([], {"id": "../../etc"}, {"id": "GHSA-a-b", "affected": "x"}, {"id": "GHSA-a-b", "affected": [1]}):
        with pytest.raises(ValueError):
            check_advisory(doc)
    odd = check_advisory({"id": "GHSA-a-b", "affected": [{"package": "x"}, {"package": {"name": 1}},
                                                         {"package": {"ecosystem": "PyPI", "name": "tinyvuln"},
                                                          "ranges": [{"type": "ECOSYSTEM",
                                                                      "events": [{"introduced": 3}]}, "junk"],
                                                          "versions": "1.0"}]})
    assert match(Package("PyPI", "tinyvuln", "1.0"), odd) is None  # nothing readable says it is affected


DPKG = """Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl (3.0.11-1~deb12u2)
Version: 3.0.11-1~deb12u2+b1
Description: Secure Sockets Layer toolkit
 continuation: not a field

Package: removed-thing
Status: deinstall ok config-files
Version: 1.0

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2

Package: ../evil
Status: install ok installed
Version: 1.0
"""


def test_dpkg_status_and_os_release_become_debian_packages() -> None:
    pkgs = dpkg_status(DPKG)
    assert [(p.name, p.source, p.source_version) for p in pkgs] == [
        ("bash", "bash", "5.2.15-2+b2"), ("libssl3", "openssl", "3.0.11-1~deb12u2")]
    release = os_release('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\njunk line\n')
    assert distro_of(release) == "debian-12" and deb_ecosystem("debian-12") == "Debian:12"
    assert distro_of({"ID": "alpine", "VERSION_ID": "3.20"}) is None
    assert dpkg_status("\x00" * 1000 + "\n\n:::\n") == []


# --- SBOM ----------------------------------------------------------------------------------------------------


def test_the_sbom_validates_and_holds_the_model_its_packages_and_datasets(lab: Lab) -> None:
    from shipyard.adapters.supply.sbom import ImagePart, SbomInput, build_sbom, check_document
    from shipyard.errors import IntegrityError

    mv = lab.svc.registry.resolve("tiny@1")
    made = make_sbom(lab.svc, mv, None, {})
    doc = json.loads(made.document)
    check_document(made.document)  # CycloneDX 1.6, by the schema cyclonedx-python-lib ships
    assert doc["specVersion"] == "1.6"
    model = doc["metadata"]["component"]
    assert model["type"] == "machine-learning-model" and model["name"] == "tiny" and model["version"] == "1"
    assert model["hashes"] == [{"alg": "SHA-256", "content": mv.manifest_digest.hex}]
    props = {p["name"]: p["value"] for p in model["properties"]}
    assert float(props["shipyard:metric:accuracy"]) == pytest.approx(0.9)
    purls = {c["purl"] for c in doc["components"] if "purl" in c}
    assert "pkg:pypi/tinyvuln@1.0" in purls and any(p.startswith("pkg:pypi/scikit-learn@") for p in purls)
    data = [c for c in doc["components"] if c["type"] == "data"]
    assert [d["name"] for d in data] == ["data/prepared", "data/train.csv"]  # code and untracked files are not data
    assert data[1]["hashes"][0]["content"] == lab.dataset[7:]
    notes = [p["value"] for p in model["properties"] if p["name"] == "shipyard:note"]
    assert any("not listed as datasets" in n and "notes.txt src/train.py" in n for n in notes), notes
    assert packages_of(doc)[0].count(Package("PyPI", "tinyvuln", "1.0")) == 1
    _, record = lab.svc.registry.results(mv, "sbom")[-1]
    assert record == {"document": str(made.digest), "image": None, "packages": made.packages, "spec": "1.6"}
    with lab.svc.store.open(made.digest) as f:
        assert f.read() == made.document

    image = ImagePart("shipyard/tiny:1", "sha256:" + "ab" * 32, "debian-12", tuple(dpkg_status(DPKG)))
    with_os, count = build_sbom(SbomInput("tiny", 1, str(mv.manifest_digest), "sklearn", {}, [], image=image))
    os_pkgs = packages_of(json.loads(with_os))[0]
    assert Package("Debian:12", "openssl", "3.0.11-1~deb12u2") in os_pkgs and count == 2
    image_only, _ = build_sbom(SbomInput(None, 0, "", "", {}, [], image=image))  # the image is the subject
    assert json.loads(image_only)["metadata"]["component"]["type"] == "container"
    assert sorted(p.name for p in packages_of(json.loads(image_only))[0]) == ["bash", "openssl"]
    broken = json.loads(made.document)
    broken["components"][0]["type"] = "not-a-type"
    with pytest.raises(IntegrityError, match=r"CycloneDX 1\.6"):
        check_document(json.dumps(broken))


def test_sbom_command_writes_the_document(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in lab.env().items():
        if key.startswith("SHIPYARD_"):
            monkeypatch.setenv(key, value)
    target = tmp_path / "tiny.cdx.json"
    done = CliRunner().invoke(app, ["sbom", "tiny@2", "-o", str(target)])
    assert done.exit_code == 0, done.output
    assert "pkg:pypi/tinyvuln@1.1" in target.read_text() and "recorded" in done.output


# --- scans ---------------------------------------------------------------------------------------------------


def test_offline_db_finds_the_vulnerable_version_and_not_the_fixed_one(lab: Lab) -> None:
    first = run_scan(lab.svc, "tiny@1", db=lab.db)
    assert first.checked and first.source == f"offline:{lab.db}" and first.recorded
    assert _ids(first.rows()) == BLOCKING_IDS  # the PYSEC and the GHSA it aliases are one finding
    critical = next(r for r in first.rows() if r["id"] == "GHSA-aaaa-bbbb-cccc")
    assert critical["severity"] == "critical" and critical["fixed"] == ["1.1"] and critical["version"] == "1.0"
    assert "PYSEC-2026-7" in critical["aliases"] and _ids(first.blocking()) == BLOCKING_IDS
    fixed = run_scan(lab.svc, "tiny@2", db=lab.db)
    assert fixed.checked and fixed.findings == [] and fixed.packages == first.packages
    status = scan_status(lab.svc, lab.svc.registry.resolve("tiny@2"))
    assert status["checked"] is True and status["findings"] == []


def test_the_osv_api_over_http_gives_the_same_findings(lab: Lab) -> None:
    result = run_scan(lab.svc, "tiny@1", osv_url=lab.osv.url + "/ok")
    assert result.checked and result.source == lab.osv.url + "/ok"
    assert _ids(result.rows()) == BLOCKING_IDS
    asked = {(q["package"]["name"], q["version"]) for q in lab.osv.queries[-1]["queries"]}
    assert ("tinyvuln", "1.0") in asked and len(asked) == result.packages
    assert run_scan(lab.svc, "tiny@2", osv_url=lab.osv.url + "/ok").findings == []
    paged = run_scan(lab.svc, "tiny@1", osv_url=lab.osv.url + "/paged")  # next_page_token followed to the end
    assert _ids(paged.rows()) == BLOCKING_IDS
    assert any("page_token" in q for q in lab.osv.queries[-1]["queries"])


@pytest.mark.parametrize(("mode", "why"), [("garbage", "not JSON"), ("huge", "more than"),
                                           ("flood", "more than 32 MiB"), ("hang", "within 1 s"),
                                           ("error", "HTTP 500")])
def test_a_bad_server_is_not_checked_never_clean(lab: Lab, mode: str, why: str) -> None:
    clock = time.monotonic()
    result = run_scan(lab.svc, "tiny@1", osv_url=f"{lab.osv.url}/{mode}")
    assert time.monotonic() - clock < 30  # a hanging server is cut off by scan.timeout (1 s here)
    assert result.checked is False and result.source is None and result.findings == []
    assert why in result.errors[0], result.errors
    status = scan_status(lab.svc, lab.svc.registry.resolve("tiny@1"))
    assert status["checked"] is False and status["findings"] == []


def test_unreachable_sources_are_not_checked_and_exit_13(lab: Lab) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    done = shipyard("scan", "tiny@1", "--osv-url", closed, env=lab.env(), cwd=lab.root, check=False)
    assert done.returncode == 13, done.stdout + done.stderr
    assert "NOT CHECKED" in done.stdout and "cannot be reached" in done.stdout
    assert "No known vulnerabilities" not in done.stdout and "Traceback" not in done.stderr
    _, record = lab.svc.registry.results(lab.svc.registry.resolve("tiny@1"), "scan")[-1]
    assert record["checked"] is False and record["source"] is None and record["findings"] == []
    assert record["target"] == "tiny@1" and record["sbom"].startswith("sha256:")


def test_a_db_that_is_no_osv_export_is_a_usage_error_and_nothing_is_recorded(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mv = lab.svc.registry.resolve("tiny@2")
    before = len(lab.svc.registry.results(mv, "scan"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "README.md").write_text("not a database")
    for db, why in ((tmp_path / "no-such-db", "no such folder"), (tmp_path / "README.md", "is a file"),
                    (tmp_path / "empty", "holds no OSV export"),
                    (lab.db / "PyPI", "is one ecosystem's export: give the folder that holds PyPI/")):
        with pytest.raises(InvalidInputError, match=why):
            run_scan(lab.svc, "tiny@2", db=db)
    for key, value in lab.env().items():
        if key.startswith("SHIPYARD_"):
            monkeypatch.setenv(key, value)
    done = CliRunner().invoke(app, ["scan", "tiny@2", "--db", str(tmp_path / "osvv")])
    assert isinstance(done.exception, InvalidInputError) and done.exception.exit_code == 2, done.output
    assert "no such folder" in str(done.exception)
    assert len(lab.svc.registry.results(mv, "scan")) == before


def test_the_scan_command_exits_14_on_an_unwaived_critical(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in lab.env().items():
        if key.startswith("SHIPYARD_"):
            monkeypatch.setenv(key, value)
    done = CliRunner().invoke(app, ["scan", "tiny@1", "--db", str(lab.db), "--json"])
    assert done.exit_code == 14, done.output
    body = json.loads(done.output)
    assert body["checked"] is True and body["blocking"] == 2 and body["recorded"] is True
    clean = CliRunner().invoke(app, ["scan", "tiny@2", "--db", str(lab.db)])
    assert clean.exit_code == 0 and "no known vulnerabilities" in clean.output


def test_waivers_count_until_they_expire(lab: Lab) -> None:
    mv = lab.svc.registry.resolve("tiny@1")
    run_scan(lab.svc, "tiny@1", db=lab.db)
    now = time.time()
    day = date.today()
    waive(lab.svc, "tiny@1", "CVE-2026-10001", "not reachable from the model's code", (day + timedelta(days=30))
          .isoformat(), now=now)  # an alias names the critical
    waive(lab.svc, "tiny@1", "GHSA-dddd-eeee-ffff", "mitigated", (day + timedelta(days=2)).isoformat(), now=now)
    status = scan_status(lab.svc, mv, now)
    assert all(f["waived"] for f in status["findings"]), status
    critical = next(f for f in status["findings"] if f["severity"] == "critical")
    assert critical["waiver"] == {"reason": "not reachable from the model's code",
                                  "expires": (day + timedelta(days=30)).isoformat(), "by": "tester@ci"}
    later = scan_status(lab.svc, mv, now + 5 * 86400)  # the 2-day waiver has expired: the high counts again
    assert {f["id"] for f in later["findings"] if not f["waived"]} == {"GHSA-dddd-eeee-ffff"}
    for advisory, expires in (("../etc", (day + timedelta(days=3)).isoformat()),
                              ("GHSA-aaaa-bbbb-cccc", day.isoformat()),
                              ("GHSA-aaaa-bbbb-cccc", (day + timedelta(days=400)).isoformat()),
                              ("GHSA-aaaa-bbbb-cccc", "next week")):
        with pytest.raises(InvalidInputError):
            waive(lab.svc, "tiny@1", advisory, "why", expires, now=now)
    with pytest.raises(InvalidInputError, match="reason"):
        waive(lab.svc, "tiny@1", "GHSA-aaaa-bbbb-cccc", "  ", (day + timedelta(days=3)).isoformat(), now=now)


def test_hostile_databases_are_bounded(lab: Lab, tmp_path: Path) -> None:
    from shipyard.adapters.supply import osv_db

    bomb = b"\0" * (osv_db.MAX_ADVISORY_BYTES + 1)  # ~8 MiB of zeros: a few KiB zipped
    huge = json.dumps({**CRITICAL, "id": "GHSA-huge-huge-huge", "details": "x" * osv_db.MAX_ADVISORY_BYTES}).encode()
    db = write_db(tmp_path / "hostile", ADVISORIES, {"BOMB-1.json": bomb, "GHSA-huge-huge-huge.json": huge,
                                                     "BAD-1.json": b"{not json", "DEEP-1.json": b"[" * 100_000,
                                                     "../../escape.json": json.dumps(HIGH).encode()})
    findings, errors = OfflineDb(db).scan([Package("PyPI", "tinyvuln", "1.0")])
    assert {f.id for f in findings} == BLOCKING_IDS  # the good advisories still count
    text = " ".join(errors)
    assert "BOMB-1.json" in text and "BAD-1.json" in text and "GHSA-huge" in text
    assert not (tmp_path / "escape.json").exists() and not list(tmp_path.glob("hostile/PyPI/*.json"))
    (tmp_path / "notzip" / "PyPI").mkdir(parents=True)
    (tmp_path / "notzip" / "PyPI" / "all.zip").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(BackendUnavailableError, match="not a readable zip"):
        OfflineDb(tmp_path / "notzip").scan([Package("PyPI", "tinyvuln", "1.0")])
    with pytest.raises(BackendUnavailableError, match="no advisories for 1 Debian"):
        OfflineDb(db).scan([Package("Debian:12", "bash", "5.2")])


def test_the_index_is_kept_on_disk_and_a_folder_of_json_works(lab: Lab, tmp_path: Path) -> None:
    folder = tmp_path / "jsondb" / "PyPI"
    folder.mkdir(parents=True)
    for adv in ADVISORIES:
        (folder / f"{adv['id']}.json").write_text(json.dumps(adv))
    cache = tmp_path / "cache"
    pkgs = [Package("PyPI", "tinyvuln", "1.0")]
    first, _ = OfflineDb(tmp_path / "jsondb", cache).scan(pkgs)
    assert {f.id for f in first} == BLOCKING_IDS and len(list(cache.glob("osv-index-*.json"))) == 1
    api = OsvApi(lab.osv.url + "/ok", 1.0)
    assert {f.id for f in api.scan(pkgs)[0]} == BLOCKING_IDS
    with pytest.raises(InvalidInputError):
        OsvApi("file:///etc/passwd", 1.0)


@pytest.mark.xdist_group("images")  # the container tests' worker: its session daemon and base image are shared
def test_an_images_os_packages_are_read_without_running_it(lab: Lab, daemon: Any, base_image: str) -> None:
    from shipyard.wiring.supply import make_sbom as sbom_of

    made = sbom_of(lab.svc, lab.svc.registry.resolve("tiny@1"), base_image, daemon.env)
    doc = json.loads(made.document)
    pkgs = packages_of(doc)[0]
    debian = {p.name for p in pkgs if p.ecosystem == "Debian:12"}
    assert {"bash", "python3-defaults", "tinyvuln"} - {"tinyvuln"} <= debian | {"python3-defaults"}
    assert "bash" in debian and Package("PyPI", "tinyvuln", "1.0") in pkgs
    container = next(c for c in doc["components"] if c["type"] == "container")
    assert container["name"] == base_image and len(container["components"]) > 50
    left = daemon.docker("ps", "-a", "--format", "{{.Names}}").stdout
    assert "shipyard-sbom-" not in left  # the container it read from is gone (it was never started)
    # the image alone (no version was built as it): its Debian packages against a Debian export, printed only
    (lab.root / "debdb" / "Debian").mkdir(parents=True, exist_ok=True)
    bash = {"id": "DEBIAN-CVE-2026-1", "affected": [{"package": {"ecosystem": "Debian:12", "name": "bash"},
                                                      "ranges": [{"type": "ECOSYSTEM", "events": [
                                                          {"introduced": "0"}, {"fixed": "99:0"}]}]}]}
    (lab.root / "debdb" / "Debian" / "DEBIAN-CVE-2026-1.json").write_text(json.dumps(bash))
    result = run_scan(lab.svc, base_image, db=lab.root / "debdb", environ=daemon.env)
    assert result.checked and result.model is None and result.recorded is False
    assert [(f.id, f.package, f.ecosystem) for f in result.findings] == [("DEBIAN-CVE-2026-1", "bash", "Debian:12")]
    # an image built for tiny@1 (its build record names it): scanned as the version's, recorded with it
    import shutil

    from shipyard.core.registry.records import BUILD_ACTION

    mv = lab.svc.registry.resolve("tiny@1")
    daemon.docker("tag", base_image, "shipyard/tiny:1")
    image_id = daemon.docker("image", "inspect", "--format", "{{.Id}}", base_image).stdout.strip()
    lab.svc.registry.record_result(mv, BUILD_ACTION, {"image": "shipyard/tiny:1", "image_id": image_id},
                                   "image shipyard/tiny:1")
    partial = run_scan(lab.svc, "shipyard/tiny:1", db=lab.db, environ=daemon.env)  # PyPI only: Debian unchecked
    assert partial.model == mv and partial.recorded and partial.checked is False
    assert "Debian" in partial.errors[0] and scan_status(lab.svc, mv)["checked"] is False
    shutil.copytree(lab.db / "PyPI", lab.root / "debdb" / "PyPI")
    both = run_scan(lab.svc, "shipyard/tiny:1", db=lab.root / "debdb", environ=daemon.env)
    assert both.checked and {f.id for f in both.findings} == BLOCKING_IDS | {"DEBIAN-CVE-2026-1"}
    assert scan_status(lab.svc, mv)["image"] == "shipyard/tiny:1"


# --- hardening (issue 11's attack findings) ----------------------------------------------------------------


def test_an_empty_offline_db_is_not_checked_never_clean(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "emptydir" / "PyPI").mkdir(parents=True)  # an empty ecosystem folder
    (tmp_path / "emptyzip" / "PyPI").mkdir(parents=True)  # an all.zip with no members
    zipfile.ZipFile(tmp_path / "emptyzip" / "PyPI" / "all.zip", "w").close()
    for db in (tmp_path / "emptydir", tmp_path / "emptyzip"):
        with pytest.raises(BackendUnavailableError, match=f"{db} holds no PyPI advisories"):
            OfflineDb(db).scan([Package("PyPI", "tinyvuln", "1.0")])
    with pytest.raises(InvalidInputError, match="holds no OSV export"):  # --db: a usage error, nothing recorded
        run_scan(lab.svc, "tiny@1", db=tmp_path / "emptydir")
    result = run_scan(lab.svc, "tiny@1", db=tmp_path / "emptyzip")  # an export with nothing in it
    assert result.checked is False and result.findings == [] and "holds no PyPI advisories" in result.errors[0]
    assert scan_status(lab.svc, lab.svc.registry.resolve("tiny@1"))["checked"] is False


def test_malicious_packages_are_critical_and_no_severity_is_unknown() -> None:
    mal = {"id": "MAL-2026-0001", "summary": "Malicious code in tinyvuln (PyPI)",
           "affected": [{"package": {"ecosystem": "PyPI", "name": "tinyvuln"}, "versions": ["1.0"]}],
           "database_specific": {"malicious-packages-origins": [{"source": "ossf-package-analysis"}]}}
    found = match(Package("PyPI", "tinyvuln", "1.0"), mal)
    assert found is not None and found.severity == "critical"
    aliased = {**OTHER, "aliases": ["MAL-2026-0002"]}  # an advisory that OSV's malicious-packages entry aliases
    assert severity_of(aliased) == "critical" and severity_of(OTHER) == "unknown"
    assert severity_of({"id": "PYSEC-2026-9", "severity": []}) == "unknown"


def test_a_local_version_matches_the_advisory_of_its_public_version() -> None:
    listed = {"id": "GHSA-aaaa-bbbb-cccc",
              "affected": [{"package": {"ecosystem": "PyPI", "name": "torch"}, "versions": ["2.1.0"]}]}
    ranged = {"id": "GHSA-aaaa-bbbb-dddd", "affected": [{"package": {"ecosystem": "PyPI", "name": "torch"},
              "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0"}, {"last_affected": "2.1.0"}]}]}]}
    for version in ("2.1.0", "2.1.0+cpu", "2.1.0+cu121"):
        assert match(Package("PyPI", "torch", version), listed) is not None, version
        assert match(Package("PyPI", "torch", version), ranged) is not None, version
    assert match(Package("PyPI", "torch", "2.1.1+cpu"), listed) is None
    assert match(Package("PyPI", "torch", "2.1.1+cpu"), ranged) is None
    debian = {"id": "DSA-5000-2", "affected": [{"package": {"ecosystem": "Debian:12", "name": "x"},
                                                "versions": ["1.0"]}]}
    assert match(Package("Debian:12", "x", "1.0+b1"), debian) is None  # the local-version rule is PyPI's only


def test_advisory_text_is_cleaned_of_escapes_and_bounded() -> None:
    from shipyard.core.supply.osv import Finding, clean_text

    esc = "9.9\x1b[2J\x1b[32mOK\x1b]8;;http://evil\x07x\x1b]8;;\x07\nnext\x9b31m\x07"
    doc = {"id": "GHSA-aaaa-bbbb-eeee", "summary": "line one\x1b[31m red\x1b[0m\nline two",
           "affected": [{"package": {"ecosystem": "PyPI", "name": "tinyvuln"},
                         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": esc},
                                                                     {"fixed": "1" * 10_000}]}]}]}
    found = match(Package("PyPI", "tinyvuln", "1.0"), doc, listed=True)
    assert found is not None
    texts = [found.id, found.package, found.version, found.summary, *found.fixed, *found.aliases]
    assert all(t.isprintable() and "\x1b" not in t and len(t) <= 200 for t in texts), texts
    assert found.summary == "line one red" and "9.9OKxnext" in found.fixed and found.package == "tinyvuln"
    stored = Finding.from_dict({**found.to_dict(), "fixed": [esc], "summary": esc, "package": "a\x1b[Hb"})
    assert stored.fixed == ("9.9OKxnext",) and stored.summary == "9.9OKxnext" and stored.package == "ab"
    assert clean_text("\x1bP1;2q" + "x" * 50 + "\x1b\\ok") == "ok"  # a DCS string goes whole


def test_osv_urls_with_credentials_or_plain_http_elsewhere_are_refused() -> None:
    from shipyard.core.governance.config import scan_config

    for url in ("https://mirror:Zq9Pass@osv.example", "http://u@127.0.0.1:8080"):
        with pytest.raises(ValueError, match="user name or password"):
            scan_config({"osv_url": url})
        with pytest.raises(InvalidInputError, match="user name or password"):
            OsvApi(url, 1.0)
    with pytest.raises(ValueError, match=r"http:// only to 127\.0\.0\.1 or localhost"):
        scan_config({"osv_url": "http://osv.example"})
    for ok in ("https://osv.example/api", "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"):
        assert scan_config({"osv_url": ok}).osv_url == ok
    from shipyard.core.project.loader import parse_config
    from shipyard.errors import ConfigError

    with pytest.raises(ConfigError, match=r"shipyard\.yaml:2: scan\.osv_url.*user name or password") as err:
        parse_config("scan:\n  osv_url: https://u:Zq9Pass@osv.example\n")  # refused when the project loads
    assert "Zq9Pass" not in str(err.value)


class _Trickle:
    """A server on 127.0.0.1 that answers one byte at a time, without end: after a status line and headers
    (``head``), or inside the headers themselves."""

    def __init__(self, head: bool) -> None:
        import socket

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.head = head
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: Any) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" if self.head
                             else b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not self.stop.is_set():
                    conn.sendall(b" ")
                    time.sleep(0.05)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("head", [True, False])
def test_a_trickling_server_is_cut_off_by_the_timeout(head: bool) -> None:
    server = _Trickle(head)
    try:
        with pytest.raises(BackendUnavailableError, match=r"did not finish answering within 0\.4 s"):
            OsvApi(server.url, 0.4).scan([Package("PyPI", "tinyvuln", "1.0")])
    finally:
        server.close()


def test_the_whole_api_query_has_a_deadline() -> None:
    slow = {f"GHSA-aaaa-bbbb-{i:04d}": {"id": f"GHSA-aaaa-bbbb-{i:04d}", "affected": [
        {"package": {"ecosystem": "PyPI", "name": "tinyvuln"}, "versions": ["1.0"]}]} for i in range(40)}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, body: Any) -> None:
            data = json.dumps(body).encode()
            with contextlib.suppress(OSError):  # the client has given up on it
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._answer({"results": [{"vulns": [{"id": vid} for vid in slow]}]})

        def do_GET(self) -> None:  # each advisory just inside the request timeout
            time.sleep(0.2)
            self._answer(slow[self.path.rsplit("/", 1)[-1]])

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        api = OsvApi(f"http://127.0.0.1:{httpd.server_address[1]}", 0.5)
        assert api.budget == 5.0  # ten times scan.timeout
        api.budget = 0.5  # 40 advisories / 8 fetchers x 0.2 s: past it
        with pytest.raises(BackendUnavailableError, match=r"did not answer the whole query within 0\.5 s"):
            api.scan([Package("PyPI", "tinyvuln", "1.0")])
        assert OsvApi("https://osv.example", 100).budget == 300  # at most five minutes
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_dataset_is_tracked_data_never_a_file_git_tracks() -> None:
    from shipyard.core.supply.datasets import datasets_of

    inputs = {"data/raw/a.csv": "sha256:1", "data/prepared": "sha256:2", "src/train.py": "sha256:3",
              "copy.csv": "sha256:4", "params.py": "sha256:5", "loose.txt": "sha256:6"}
    kept, left = datasets_of(inputs, tracked={"data/raw", "src/train.py"}, digests={"sha256:4"},
                             folders={"data/prepared"}, in_git={"src/train.py", "params.py"})
    assert kept == [("copy.csv", "sha256:4"), ("data/prepared", "sha256:2"), ("data/raw/a.csv", "sha256:1")]
    assert left == ["loose.txt", "params.py", "src/train.py"]  # git tracks it: code, even if the lock names it


def test_waive_warns_on_an_advisory_no_scan_found_and_says_what_it_replaces(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.wiring.supply import record_waiver

    run_scan(lab.svc, "tiny@1", db=lab.db)
    later = (date.today() + timedelta(days=20)).isoformat()
    typo = record_waiver(lab.svc, "tiny@1", "GHSA-xxxx-yyyy-zzzz", "typo", later)
    assert typo.found is False and typo.replaces is None
    assert len(typo.notes) == 1 and "not among the findings of tiny@1's scans" in typo.notes[0]
    first = record_waiver(lab.svc, "tiny@1", "PYSEC-2026-7", "first", later)  # an alias of the critical
    assert first.found  # (it may replace a waiver another test of this module recorded)
    for key, value in lab.env().items():
        if key.startswith("SHIPYARD_"):
            monkeypatch.setenv(key, value)
    done = CliRunner().invoke(app, ["waive", "tiny@1", "GHSA-aaaa-bbbb-cccc", "--reason", "second", "--expires",
                                    later, "--json"])
    assert done.exit_code == 0, done.output
    body = json.loads(done.output)
    assert body["found"] is True and body["replaces"]["reason"] == "first" and body["version"] == "tiny@1"
    assert body["notes"] == [f"replaces the earlier waiver of PYSEC-2026-7 (until {later}, by tester@ci: first)"]
    never = record_waiver(lab.svc, "tiny@2", "GHSA-aaaa-bbbb-cccc", "why", later)
    assert never.found is False and ("no recorded scan" in never.notes[0] or "not among" in never.notes[0])


def test_models_show_gives_the_newest_scans_verdict(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in lab.env().items():
        if key.startswith("SHIPYARD_"):
            monkeypatch.setenv(key, value)
    run_scan(lab.svc, "tiny@1", db=lab.db)
    shown = CliRunner().invoke(app, ["models", "show", "tiny@1", "--json"])
    assert shown.exit_code == 0, shown.output
    scan = json.loads(shown.output)["scan"]
    assert scan["checked"] is True and scan["source"] == f"offline:{lab.db}" and scan["counts"]["critical"] == 1
    assert scan["blocking"] + scan["waived"] >= 2
    run_scan(lab.svc, "tiny@2", osv_url=f"http://127.0.0.1:{free_port()}")  # nothing answers: not checked
    table = CliRunner().invoke(app, ["models", "show", "tiny@2"], env={"COLUMNS": "300"})
    assert "not checked" in table.output and "never scanned" not in table.output, table.output


def test_a_forged_sbom_record_listing_fewer_packages_is_not_what_a_scan_trusts(lab: Lab) -> None:
    """An SBOM record any client can add (here one without its packages) never makes a vulnerable version scan
    clean: the scan uses a stored SBOM only when it lists the lock's packages, and builds a new one otherwise."""
    from shipyard.core.registry.records import SBOM_ACTION
    from shipyard.wiring.supply import make_sbom

    mv = lab.svc.registry.resolve("tiny@1")
    honest = make_sbom(lab.svc, mv, None, {})
    doc = json.loads(honest.document)
    doc["components"] = [c for c in doc.get("components", []) if not str(c.get("purl", "")).startswith("pkg:")]
    forged = lab.svc.store.put_bytes(json.dumps(doc).encode())
    lab.svc.registry.record_result(mv, SBOM_ACTION, {"document": str(forged), "image": None, "packages": 0,
                                                     "spec": "1.6"}, "SBOM (forged)")
    result = run_scan(lab.svc, "tiny@1", db=lab.db)
    assert result.checked and result.packages == honest.packages and _ids(result.rows()) == BLOCKING_IDS
