"""The runs of ``hear-suite eval``: one HEAR module with its weights file, ``load_model`` options
and label each (:class:`Run`, named after all three so that results never mix), parsed from
``--module M [--model F] [--model-options JSON] [--label L]`` groups (:func:`parse_runs`), plus
the log-mel floor run that every evaluation compares with (:func:`with_floor`)."""
from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hear_suite import checkpoint

FLOOR_MODULE, FLOOR_LABEL = "hear_suite.logmel", "logmel (floor)"


def _slugify(text: str) -> str:
    from slugify import slugify  # python-slugify, as heareval uses

    return slugify(text)


@dataclass
class Run:
    """One module to evaluate, with its weights file and ``load_model`` keyword options."""

    module: str
    model: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict)
    label: Optional[str] = None

    @property
    def run_id(self) -> str:
        """Directory name: module, model file stem and options, plus a hash when a model file is
        given (two files with the same name stay apart)."""
        parts = [self.module]
        if self.model:
            digest = hashlib.sha1(str(Path(self.model).resolve()).encode()).hexdigest()[:8]
            parts.append(f"{Path(self.model).stem}-{digest}")
        if self.options:
            parts.append(_slugify(json.dumps(self.options, sort_keys=True)))
        return "__".join(parts)

    @property
    def name(self) -> str:
        return self.label or self.run_id

    def weights_file(self) -> Optional[Path]:
        """The weights file the run embeds with: ``--model``, else the shipped default of the
        module's family (``hear_suite.kwmlp_2levelmel`` -> ``kwmlp``'s); None for a module
        without shipped weights (the floor, a plugin from elsewhere)."""
        if self.model:
            return Path(self.model)
        from hear_suite.registry import MODELS

        for entry in MODELS.values():
            if entry.weights and (self.module == entry.module
                                  or self.module.startswith(entry.module + "_")):
                return checkpoint.default_weights(entry.weights)
        return None

    def weights_key(self) -> Optional[Dict[str, str]]:
        """Name and content hash of :meth:`weights_file`: embeddings made with another file (a
        retrained file in place, a new shipped default) are not this run's."""
        path = self.weights_file()
        if path is None:
            return None
        return {"file": path.name,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16]}

    def heareval_dir_name(self) -> str:
        """The directory heareval's embedding runner names after the module and its options."""
        if not self.options:
            return self.module
        return self.module + "-" + "-".join(f"{_slugify(k)}={_slugify(str(v))}"
                                            for k, v in self.options.items())


class ModuleAction(argparse.Action):
    def __call__(self, parser, namespace, value, option_string=None):
        runs = list(getattr(namespace, "runs", None) or [])
        runs.append({"module": value})
        namespace.runs = runs


class RunOptionAction(argparse.Action):
    """``--model``/``--model-options``/``--label``: attach to the latest ``--module``."""

    def __call__(self, parser, namespace, value, option_string=None):
        runs = getattr(namespace, "runs", None)
        if not runs:
            parser.error(f"{option_string} must follow the --module it applies to")
        if self.dest in runs[-1]:
            parser.error(f"{option_string} given twice for --module {runs[-1]['module']}")
        runs[-1][self.dest] = value


def parse_runs(raw: Sequence[Dict[str, str]]) -> List[Run]:
    runs = []
    for r in raw:
        options = json.loads(r.get("model_options") or "{}")
        if not isinstance(options, dict):
            raise ValueError(f"--model-options for {r['module']} must be a JSON object")
        model = r.get("model")
        if model is not None:  # a path, or the name of a shipped file as load_model takes it
            model = checkpoint.resolve_weights(model, default="")
            if not model.exists():
                raise FileNotFoundError(f"--model {model} (for {r['module']}) does not exist")
        runs.append(Run(r["module"], str(model.resolve()) if model else None, options,
                        r.get("label")))
    ids, names = [r.run_id for r in runs], [r.name for r in runs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"the same module/model/options twice: {ids}")
    if len(set(names)) != len(names):
        raise ValueError(f"two runs with the same --label: {names}")
    return runs


def with_floor(runs: Sequence[Run], enabled: bool = True) -> Tuple[List[Run], Optional[str]]:
    """``(runs, name of the floor run)``: the first ``hear_suite.logmel`` run is the floor; without
    one, a ``logmel (floor)`` run is appended (evaluated last, after the runs asked for).
    ``enabled=False``: the runs unchanged and no floor."""
    runs = list(runs)
    if not enabled:
        return runs, None
    for run in runs:
        if run.module == FLOOR_MODULE:
            return runs, run.name
    if FLOOR_LABEL in {r.name for r in runs}:
        raise ValueError(f"--label {FLOOR_LABEL!r} is the name of the floor run; choose another "
                         f"or pass --no-floor")
    return runs + [Run(FLOOR_MODULE, label=FLOOR_LABEL)], FLOOR_LABEL
