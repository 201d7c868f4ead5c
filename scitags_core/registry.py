"""The scitags registry (api.json): validated model and lookups both ways.

Validation = registry.schema.json (jsonschema, with formats) plus what the schema cannot
say: unique experiment ids and names, unique activity ids and names within an
experiment. Names are compared case-insensitively (lookups are case-insensitive);
the exact spelling is kept for display. Ids outside what a flow label can carry
(experiment 1..511, activity 0..63) are kept but flagged not markable.

Ids are not stable over years (SPEC.md): `modified` and `digest` identify which registry
gave an id its name, so counters can record both.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import jsonschema
from scitags_core import flowlabel
from scitags_core.schemas import DEFAULT_REGISTRY_PATH, registry_validator

DEFAULT_REGISTRY_URL = "https://www.scitags.org/api.json"
MAX_REGISTRY_BYTES = 4 * 1024 * 1024  # today's file is ~7 KB; refuse absurd answers
EXPERIMENT_MIN_MARKABLE = 1  # id 0 in a label means "no experiment"


class RegistryError(ValueError):
    """A registry document that is not usable; the message names the cause."""


class RegistryFetchError(RegistryError):
    """The registry could not be read at all (network, HTTP status, file I/O)."""


class RegistryLookupError(LookupError):
    """A name or id that the registry does not know."""

    def __str__(self) -> str:  # LookupError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, slots=True)
class Activity:
    id: int
    name: str

    @property
    def markable(self) -> bool:
        return 0 <= self.id <= flowlabel.ACTIVITY_MAX


@dataclass(frozen=True, slots=True)
class Experiment:
    id: int
    name: str
    activities: tuple[Activity, ...]

    @property
    def markable(self) -> bool:
        return EXPERIMENT_MIN_MARKABLE <= self.id <= flowlabel.EXPERIMENT_MAX

    def activity(self, key: int | str) -> Activity | None:
        """Activity by id (int) or by name (str, case-insensitive)."""
        for act in self.activities:
            if act.id == key if isinstance(key, int) else act.name.casefold() == key.casefold():
                return act
        return None


@dataclass(frozen=True, slots=True)
class TagInfo:
    """What an (experiment id, activity id) pair means in one registry."""

    experiment_id: int
    activity_id: int
    experiment_name: str | None  # None: experiment not in the registry
    activity_name: str | None  # None: activity not registered for that experiment
    registry: str  # Registry.identity at lookup time

    @property
    def registered(self) -> bool:
        return self.experiment_name is not None and self.activity_name is not None

    def as_dict(self) -> dict[str, Any]:
        return {"experiment_id": self.experiment_id, "experiment_name": self.experiment_name,
                "activity_id": self.activity_id, "activity_name": self.activity_name,
                "registered": self.registered, "registry": self.registry}


def _fold(name: str) -> str:
    return name.casefold()


def _check_constraints(doc: Mapping[str, Any]) -> None:
    """Uniqueness rules the schema cannot express."""
    ids: dict[int, str] = {}
    names: dict[str, int] = {}
    for exp in doc["experiments"]:
        exp_id, exp_name = exp["expId"], exp["expName"]
        if exp_id in ids:
            raise RegistryError(f"duplicate experiment id {exp_id} ({ids[exp_id]!r} and {exp_name!r})")
        if _fold(exp_name) in names:
            raise RegistryError(f"duplicate experiment name {exp_name!r} (ids {names[_fold(exp_name)]} and {exp_id})")
        ids[exp_id], names[_fold(exp_name)] = exp_name, exp_id
        act_ids: dict[int, str] = {}
        act_names: dict[str, int] = {}
        for act in exp["activities"]:
            act_id, act_name = act["activityId"], act["activityName"]
            if act_id in act_ids:
                raise RegistryError(f"experiment {exp_name!r}: duplicate activity id {act_id} "
                                    f"({act_ids[act_id]!r} and {act_name!r})")
            if _fold(act_name) in act_names:
                raise RegistryError(f"experiment {exp_name!r}: duplicate activity name {act_name!r} "
                                    f"(ids {act_names[_fold(act_name)]} and {act_id})")
            act_ids[act_id], act_names[_fold(act_name)] = act_name, act_id


def validate_document(doc: Any) -> None:
    """Raise RegistryError naming the first problem; return None for a usable registry."""
    error = jsonschema.exceptions.best_match(registry_validator().iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise RegistryError(f"schema violation at {where}: {error.message}")
    _check_constraints(doc)


class Registry:
    """An immutable, validated registry with lookups by id and by name."""

    def __init__(self, document: Mapping[str, Any], *, source: str, raw: bytes | None = None) -> None:
        validate_document(document)
        self.source = source
        self.raw = raw if raw is not None else json.dumps(document, sort_keys=True).encode()
        self.digest = hashlib.sha256(self.raw).hexdigest()
        self.version: int = document["version"]
        self.modified_text: str | None = document.get("modified")
        self.modified: dt.datetime | None = (
            dt.datetime.fromisoformat(self.modified_text.upper()) if self.modified_text else None)
        self.experiments: tuple[Experiment, ...] = tuple(
            Experiment(e["expId"], e["expName"],
                       tuple(Activity(a["activityId"], a["activityName"]) for a in e["activities"]))
            for e in document["experiments"])
        self._by_id = {e.id: e for e in self.experiments}
        self._by_name = {_fold(e.name): e for e in self.experiments}
        warnings = []
        for exp in self.experiments:
            if not exp.markable:
                warnings.append(f"experiment {exp.name!r} id {exp.id} cannot be carried in a flow label "
                                f"({EXPERIMENT_MIN_MARKABLE}..{flowlabel.EXPERIMENT_MAX}): not markable")
            for act in exp.activities:
                if not act.markable:
                    warnings.append(f"experiment {exp.name!r} activity {act.name!r} id {act.id} cannot be "
                                    f"carried in a flow label (0..{flowlabel.ACTIVITY_MAX}): not markable")
        self.warnings: tuple[str, ...] = tuple(warnings)

    # -- loading -------------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes, *, source: str) -> "Registry":
        if len(data) > MAX_REGISTRY_BYTES:
            raise RegistryError(f"{source}: {len(data)} bytes, more than {MAX_REGISTRY_BYTES}")
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise RegistryError(f"{source}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{source}: bad JSON: {exc}") from None
        except RecursionError:
            raise RegistryError(f"{source}: bad JSON: nested too deeply") from None
        try:
            return cls(doc, source=source, raw=data)
        except RegistryError as exc:
            raise RegistryError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> "Registry":
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise RegistryFetchError(f"cannot read {path}: {exc.strerror or exc}") from None
        return cls.from_bytes(data, source=str(path))

    @classmethod
    def from_url(cls, url: str = DEFAULT_REGISTRY_URL, *, timeout: float = 10.0) -> "Registry":
        request = urllib.request.Request(url, headers={"Accept": "application/json",
                                                       "User-Agent": "scitags-p4"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (https/http only)
                data = response.read(MAX_REGISTRY_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise RegistryFetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise RegistryFetchError(f"{url}: {exc.reason}") from None
        except (OSError, ValueError) as exc:  # timeouts, resets, unknown URL scheme
            raise RegistryFetchError(f"{url}: {exc or type(exc).__name__}") from None
        return cls.from_bytes(data, source=url)

    @classmethod
    def default(cls) -> "Registry":
        """The registry copy shipped with scitags-p4 (offline default)."""
        return cls.from_file(DEFAULT_REGISTRY_PATH)

    # -- identity ------------------------------------------------------------------
    @property
    def identity(self) -> str:
        """Short name of this registry version: its `modified` date, else its digest."""
        return self.modified_text or f"sha256:{self.digest[:12]}"

    def document(self) -> dict[str, Any]:
        """The registry document as loaded (a fresh copy)."""
        return json.loads(self.raw.decode("utf-8-sig"))

    # -- lookups -------------------------------------------------------------------
    def experiment(self, key: int | str) -> Experiment | None:
        """Experiment by id (int) or by name (str, case-insensitive)."""
        if isinstance(key, int):
            return self._by_id.get(key)
        return self._by_name.get(_fold(key))

    def activity(self, experiment: int | str, activity: int | str) -> Activity | None:
        exp = self.experiment(experiment)
        return exp.activity(activity) if exp is not None else None

    def resolve(self, experiment: int | str, activity: int | str) -> tuple[Experiment, Activity]:
        """Both entries, or RegistryLookupError naming what is missing."""
        exp = self.experiment(experiment)
        if exp is None:
            raise RegistryLookupError(f"unknown experiment {experiment!r} in registry {self.identity}")
        act = exp.activity(activity)
        if act is None:
            raise RegistryLookupError(f"unknown activity {activity!r} for experiment {exp.name!r} "
                                      f"in registry {self.identity}")
        return exp, act

    def ids_for(self, experiment: int | str, activity: int | str) -> tuple[int, int]:
        """(experiment id, activity id) from names or ids as people write them.

        A decimal string is an id and need not be registered (like an int); any other
        string is a name looked up case-insensitively (RegistryLookupError if unknown).
        An activity name needs a registered experiment.
        """
        def as_id(value: int | str) -> int | None:
            if isinstance(value, int):
                return value
            text = value.strip()
            return int(text) if text.isascii() and text.isdigit() else None

        exp_id = as_id(experiment)
        exp = self.experiment(exp_id if exp_id is not None else str(experiment).strip())
        if exp_id is None:
            if exp is None:
                known = ", ".join(e.name for e in self.experiments)
                raise RegistryLookupError(f"unknown experiment {experiment!r} in registry "
                                          f"{self.identity} (known: {known})")
            exp_id = exp.id
        act_id = as_id(activity)
        if act_id is None:
            act = exp.activity(str(activity).strip()) if exp is not None else None
            if act is None:
                where = f"experiment {exp.name!r}" if exp else f"unregistered experiment {exp_id}"
                known = ", ".join(a.name for a in exp.activities) if exp else "none"
                raise RegistryLookupError(f"unknown activity {activity!r} for {where} in registry "
                                          f"{self.identity} (known: {known})")
            act_id = act.id
        return exp_id, act_id

    def describe(self, experiment_id: int, activity_id: int) -> TagInfo:
        """Names for an id pair; unknown ids give None names, not errors."""
        exp = self._by_id.get(experiment_id)
        act = exp.activity(activity_id) if exp is not None else None
        return TagInfo(experiment_id, activity_id, exp.name if exp else None,
                       act.name if act else None, self.identity)

    def __repr__(self) -> str:
        return f"Registry({self.identity}, {len(self.experiments)} experiments, source={self.source!r})"
