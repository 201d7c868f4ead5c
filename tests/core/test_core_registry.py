"""Registry: validation, lookups, loading from file/URL, persisted refresh, state directory."""
from __future__ import annotations

import copy
import json
import socket
import threading
from pathlib import Path

import pytest

from scitags_core import paths
from scitags_core.registry import (
    Registry, RegistryError, RegistryFetchError, RegistryLookupError, validate_document,
)
from scitags_core.registry_store import RegistryStore, active_registry
from scitags_core.schemas import DATA_DIR, DEFAULT_REGISTRY_PATH

SHARED = Path("/work/shared/scitags")


def default_doc() -> dict:
    return json.loads(DEFAULT_REGISTRY_PATH.read_text())


def write(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


# -- the shipped copy -------------------------------------------------------------------

def test_shipped_data_is_the_shared_copy() -> None:
    for name in ("registry-2025-09-04.json", "registry.schema.json", "firefly.schema.json"):
        assert (DATA_DIR / name).is_file()
        if (SHARED / name).exists():
            assert (DATA_DIR / name).read_bytes() == (SHARED / name).read_bytes()


def test_default_registry() -> None:
    registry = Registry.default()
    assert len(registry.experiments) == 14
    assert [e.id for e in registry.experiments] == list(range(1, 15))
    assert registry.modified is not None and registry.modified.date().isoformat() == "2025-09-04"
    assert registry.identity == registry.modified_text == "2025-09-04T12:01:55.844133+00:00"
    assert registry.version == 1 and len(registry.digest) == 64
    assert registry.warnings == ()
    assert all(e.markable and all(a.markable for a in e.activities) for e in registry.experiments)


# -- lookups ----------------------------------------------------------------------------

def test_lookups_both_ways_case_insensitive() -> None:
    registry = Registry.default()
    cms = registry.experiment("CMS")
    assert cms is not None and cms.id == 3 and cms.name == "cms"
    assert registry.experiment(3) is cms
    act = registry.activity("cms", "analysis INPUT")
    assert act is not None and act.id == 14 and act.name == "Analysis Input"
    assert registry.activity(3, 14) == act
    assert registry.activity("atlas", "data challenge").id == 26
    assert registry.experiment("nope") is None and registry.experiment(99) is None
    assert registry.activity("cms", 99) is None and registry.activity(99, 1) is None
    exp, act = registry.resolve("Cms", "Analysis Input")
    assert (exp.id, act.id) == (3, 14)


def test_ids_for_names_and_numbers() -> None:
    registry = Registry.default()
    assert registry.ids_for("cms", "Analysis Input") == (3, 14)
    assert registry.ids_for("3", "14") == (3, 14)
    assert registry.ids_for(300, "5") == (300, 5)  # unregistered ids are allowed as numbers
    assert registry.ids_for("atlas", 2) == (2, 2)
    with pytest.raises(RegistryLookupError, match="unknown experiment 'nope'.*known: default, atlas"):
        registry.ids_for("nope", "1")
    with pytest.raises(RegistryLookupError, match="unknown activity 'nope' for experiment 'cms'"):
        registry.ids_for("cms", "nope")
    with pytest.raises(RegistryLookupError, match="unregistered experiment 300"):
        registry.ids_for("300", "Cache")
    with pytest.raises(RegistryLookupError, match="unknown experiment"):
        registry.resolve(99, 1)


def test_describe_unknown_ids_is_not_an_error() -> None:
    registry = Registry.default()
    known = registry.describe(3, 14)
    assert known.registered and known.experiment_name == "cms" and known.activity_name == "Analysis Input"
    assert known.registry == registry.identity
    unknown_act = registry.describe(3, 63)
    assert unknown_act.experiment_name == "cms" and unknown_act.activity_name is None
    assert not unknown_act.registered
    unknown = registry.describe(500, 1)
    assert unknown.experiment_name is None and not unknown.registered
    assert unknown.as_dict()["registered"] is False


def test_names_with_spaces_and_exact_spelling_kept() -> None:
    registry = Registry.default()
    assert registry.activity("belleii", "upload/download (user)").name == "Upload/Download (User)"


# -- validation -------------------------------------------------------------------------

def _mutate(fn) -> dict:
    doc = default_doc()
    fn(doc)
    return doc


@pytest.mark.parametrize("doc, message", [
    (_mutate(lambda d: d["experiments"].append({"expName": "other", "expId": 3, "activities": [
        {"activityName": "default", "activityId": 1}]})), "duplicate experiment id 3"),
    (_mutate(lambda d: d["experiments"].append({"expName": "CMS", "expId": 40, "activities": [
        {"activityName": "default", "activityId": 1}]})), "duplicate experiment name 'CMS'"),
    (_mutate(lambda d: d["experiments"][2]["activities"].append(
        {"activityName": "Other", "activityId": 14})), "experiment 'cms': duplicate activity id 14"),
    (_mutate(lambda d: d["experiments"][2]["activities"].append(
        {"activityName": "analysis input", "activityId": 60})), "duplicate activity name"),
    (_mutate(lambda d: d["experiments"][0].pop("expId")), "schema violation.*'expId' is a required"),
    (_mutate(lambda d: d["experiments"][0].__setitem__("expId", "1")), "schema violation.*not of type 'integer'"),
    (_mutate(lambda d: d.__setitem__("version", 2)), "schema violation at version"),
    (_mutate(lambda d: d.__setitem__("modified", "yesterday")), "schema violation at modified"),
    (_mutate(lambda d: d.__setitem__("experiments", [])), "should be non-empty"),
    ([], "schema violation"),
])
def test_invalid_registries_are_refused_with_reason(doc, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        validate_document(doc)
    with pytest.raises(RegistryError, match=message):
        Registry(doc, source="test")


def test_ids_outside_the_label_are_kept_but_not_markable() -> None:
    doc = default_doc()
    doc["experiments"].append({"expName": "big", "expId": 600, "activities": [
        {"activityName": "default", "activityId": 1}]})
    doc["experiments"][2]["activities"].append({"activityName": "Wide", "activityId": 70})
    doc["experiments"].append({"expName": "zero", "expId": 0, "activities": [
        {"activityName": "default", "activityId": 1}]})
    registry = Registry(doc, source="test")
    assert registry.experiment("big").id == 600 and not registry.experiment("big").markable
    assert not registry.experiment("zero").markable
    assert not registry.activity("cms", "wide").markable
    assert registry.experiment("cms").markable
    assert len(registry.warnings) == 3
    assert any("'big' id 600" in w and "not markable" in w for w in registry.warnings)


@pytest.mark.parametrize("content, message", [
    (b'{"version": 1, "experiments": [,]}', "bad JSON"),
    (b'{"version": 1, "experiments": [{"expName": "a", "expId": 1, "activities": '
     b'[{"activityName": "x", "activityId": 1},]},]}', "bad JSON"),  # trailing commas
    (b"\xff\xfe\x00", "not UTF-8"),
    (b"[" * 100000 + b"]" * 100000, "bad JSON"),
])
def test_bad_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(content)
    with pytest.raises(RegistryError, match=message):
        Registry.from_file(path)


def test_missing_file_is_a_fetch_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryFetchError, match="cannot read"):
        Registry.from_file(tmp_path / "absent.json")


def test_document_round_trip() -> None:
    registry = Registry.default()
    assert registry.document() == default_doc()
    assert Registry(registry.document(), source="copy").experiment("cms").name == "cms"


# -- URL --------------------------------------------------------------------------------

def test_from_url(http_dir) -> None:
    base, root = http_dir
    (root / "api.json").write_bytes(DEFAULT_REGISTRY_PATH.read_bytes())
    registry = Registry.from_url(f"{base}/api.json", timeout=5)
    assert registry.source == f"{base}/api.json"
    assert registry.digest == Registry.default().digest


def test_from_url_errors(http_dir) -> None:
    base, root = http_dir
    with pytest.raises(RegistryFetchError, match="HTTP 404"):
        Registry.from_url(f"{base}/missing.json", timeout=5)
    write(root / "bad.json", "{not json")
    with pytest.raises(RegistryError, match="bad JSON"):
        Registry.from_url(f"{base}/bad.json", timeout=5)
    with pytest.raises(RegistryFetchError):
        Registry.from_url("ftp-nope://x", timeout=1)


def test_from_url_times_out() -> None:
    # A listener that never answers: the TCP handshake completes, no response comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api.json"
        with pytest.raises(RegistryFetchError, match="timed out"):
            Registry.from_url(url, timeout=0.3)


def test_refused_connection_is_a_fetch_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RegistryFetchError, match="refused"):
        Registry.from_url(f"http://127.0.0.1:{port}/api.json", timeout=2)


# -- the persisted store ----------------------------------------------------------------

def test_store_defaults_to_shipped_copy(state_dir: Path) -> None:
    store = RegistryStore()
    assert store.directory == state_dir / "registry"
    assert store.current.digest == Registry.default().digest
    assert store.load_warning is None


def test_refresh_persists_and_restart_uses_it(state_dir: Path, http_dir) -> None:
    base, root = http_dir
    doc = default_doc()
    doc["modified"] = "2026-01-01T00:00:00+00:00"
    doc["experiments"].append({"expName": "newexp", "expId": 15, "activities": [
        {"activityName": "default", "activityId": 1}]})
    write(root / "api.json", doc)
    result = RegistryStore().refresh(url=f"{base}/api.json", timeout=5)
    assert result.ok and result.error is None
    assert result.registry.identity == "2026-01-01T00:00:00+00:00"
    assert "active registry 2026-01-01" in result.message
    restarted = RegistryStore()
    assert restarted.current.experiment("newexp").id == 15
    assert restarted.current.source == f"{base}/api.json"
    assert active_registry().experiment("newexp") is not None
    meta = json.loads((state_dir / "registry" / "active.meta.json").read_text())
    assert meta["sha256"] == result.registry.digest


@pytest.mark.parametrize("content, fetch_failed, message", [
    ("{broken", False, "bad JSON"),
    (json.dumps({"version": 1, "experiments": []}), False, "should be non-empty"),
    (None, True, "HTTP 404"),
])
def test_failed_refresh_keeps_last_good(state_dir: Path, http_dir, tmp_path: Path, content,
                                        fetch_failed: bool, message: str) -> None:
    base, root = http_dir
    store = RegistryStore()
    good = tmp_path / "good.json"
    doc = default_doc()
    doc["modified"] = "2026-02-02T00:00:00Z"
    write(good, doc)
    assert store.refresh(file=good).ok
    if content is not None:
        write(root / "api.json", content)
    result = store.refresh(url=f"{base}/api.json", timeout=5)
    assert not result.ok and result.fetch_failed is fetch_failed
    assert result.error is not None and message in result.error
    assert result.registry.identity == "2026-02-02T00:00:00Z"
    assert "keeping registry 2026-02-02T00:00:00Z" in result.message
    assert store.current.identity == "2026-02-02T00:00:00Z"
    assert RegistryStore().current.identity == "2026-02-02T00:00:00Z"  # persisted one unchanged


def test_unreachable_default_url_keeps_registry(state_dir: Path) -> None:
    # No internet here: the real URL fails (DNS or connect) and the default stays active.
    result = RegistryStore().refresh(timeout=2)
    if result.ok:  # pragma: no cover - only on a machine with internet access
        pytest.skip("www.scitags.org reachable")
    assert result.fetch_failed and "www.scitags.org" in result.error
    assert result.registry.digest == Registry.default().digest


def test_corrupt_persisted_registry_falls_back(state_dir: Path) -> None:
    store = RegistryStore()
    store.activate(Registry.default())
    (state_dir / "registry" / "active.json").write_text("{corrupt")
    restarted = RegistryStore()
    assert restarted.current.digest == Registry.default().digest
    assert restarted.load_warning is not None and "unusable" in restarted.load_warning


def test_concurrent_readers_never_see_a_partial_file(state_dir: Path, tmp_path: Path) -> None:
    store = RegistryStore()
    good = write(tmp_path / "good.json", default_doc())
    errors: list[Exception] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                RegistryStore().load()
            except Exception as exc:  # pragma: no cover - the failure being tested for
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(30):
        assert store.refresh(file=good).ok
    stop.set()
    thread.join()
    assert not errors


# -- state directory rule ---------------------------------------------------------------

def test_state_dir_rule(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCITAGS_P4_STATE_DIR", str(tmp_path / "x"))
    assert paths.state_dir() == tmp_path / "x"
    monkeypatch.delenv("SCITAGS_P4_STATE_DIR")
    monkeypatch.setattr(paths.os, "geteuid", lambda: 0)
    assert paths.state_dir() == Path("/var/lib/scitags-p4")
    monkeypatch.setattr(paths.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.state_dir() == tmp_path / "home" / ".local/state/scitags-p4"
    monkeypatch.setenv("SCITAGS_P4_STATE_DIR", "")  # empty means unset
    assert paths.state_dir() == tmp_path / "home" / ".local/state/scitags-p4"


def test_ensure_state_dir(state_dir: Path) -> None:
    assert paths.ensure_state_dir("sub") == state_dir / "sub"
    assert (state_dir / "sub").is_dir()


def test_default_doc_is_not_mutated_by_registry() -> None:
    doc = default_doc()
    before = copy.deepcopy(doc)
    Registry(doc, source="x")
    assert doc == before
