"""Who a run trains on and who its evaluation sets test, so launch can refuse an identity overlap.

Verification pairs of people the network trained on measure memory, not recognition: training on
all of LFW and scoring LFW's pairs reads as accuracy, silently. People are compared by name:

- an ImageFolder (or the aligned copy of an LFW folder): its identity folders, or for a
  Real_{R_ID}_{k} subset the identities chosen; an LFW pairs file: the names in the scored pairs;
- a synthetic set or benchmark of a learned face model: the model's source people (its card);
  one of the built-in head: nobody;
- an insightface `.bin` or RecordIO holds no names: such a set "cannot be checked", and the
  report says so rather than calling it clean.

Names are compared as written, so two sets that spell one person differently (CASIA's numeric
ids against LFW's names) are not matched. No Streamlit here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from synface.data.errors import DataError
from synface.data.eval_sets import ScorableSet, check_eval_sets
from synface.data.imagefolder import ImageFolderIndex
from synface.data.subsets import real_subset
from synface.data.synth_set import SynthSet

__all__ = ["People", "IdentityOverlapError", "SetOverlap", "OverlapReport", "folder_people", "training_people",
           "eval_people", "compare_people", "check_launch", "REPORT_FILE"]

#: what a run folder keeps of its launch check
REPORT_FILE = "identity_check.json"
#: names quoted in a one-line message
SHOWN = 5


class IdentityOverlapError(ValueError):
    """Training and evaluation share people and nobody accepted it; the message names them."""


@dataclass(frozen=True)
class People:
    """The people of one set: `names` None when the set holds no names (then `source` says why)."""

    what: str
    names: frozenset[str] | None
    source: str
    #: the source people of a learned face model (its synthetic identities are other people)
    synthetic: bool = False


def _model_people(model: str, what: str, workspace: str | Path | None) -> People:
    if model in (None, "", "builtin"):
        return People(what, frozenset(), "the built-in head: no real people")
    from synface.face.catalog import model_card  # noqa: PLC0415

    try:
        card = model_card(model, workspace)
    except ValueError as exc:  # FaceModelError: a missing or damaged model
        return People(what, None, f"face model {model!r}: {exc}")
    names = card.get("source_people")
    if not isinstance(names, list):
        return People(what, None, f"face model {model!r}: its card lists no source people")
    return People(what, frozenset(map(str, names)), f"source people of face model {model!r} ({len(names):,})", True)


def _card_model(folder: Path) -> str | None:
    """The face model a synthetic set or benchmark in `folder` was built with (None: not one)."""
    synth = SynthSet(folder)
    if synth.is_complete():
        return synth.face_model()
    for card_name in ("benchmark.json",):
        card = folder / card_name
        if card.is_file():
            try:
                data = json.loads(card.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DataError(f"unreadable card ({exc})", path=card) from None
            if not isinstance(data, dict):
                raise DataError("the card is not a JSON object", path=card)
            return str(data.get("model") or (data.get("config") or {}).get("model") or "builtin")
    return None


def folder_people(path: str | Path, what: str, workspace: str | Path | None = None,
                  r_id: int | None = None, k: int | None = None) -> People:
    """The people a training folder teaches: a synthetic set's model people, else its identity
    folders (the Real_{r_id}_{k} subset when both are given), as training reads them."""
    path = Path(path)
    if not path.exists():
        return People(what, None, f"{path} not found")
    if path.is_file() or (path / "train.rec").is_file():
        return People(what, None, f"{path.name} holds no names (RecordIO / .bin)")
    try:
        model = _card_model(path)
        if model is not None:
            return _model_people(model, what, workspace)
        index = ImageFolderIndex(path)
        names = real_subset(index, r_id, k).identities if r_id is not None and k is not None else index.identities
    except (DataError, OSError) as exc:
        return People(what, None, str(exc))
    subset = f", subset R_ID={r_id}, k={k}" if r_id is not None and k is not None else ""
    return People(what, frozenset(names), f"identity folders of {path}{subset} ({len(names):,})")


def training_people(config: Mapping[str, Any], workspace: str | Path | None = None) -> list[People]:
    """The people of each training source of a run config (`data`, `real_root`)."""
    out = []
    if config.get("data"):
        out.append(folder_people(config["data"], f"training set {Path(config['data']).name}", workspace))
    if config.get("real_root"):
        out.append(folder_people(config["real_root"], f"real training set {Path(config['real_root']).name}",
                                 workspace, config.get("real_ids"), config.get("real_k")))
    return out


def eval_people(scorable: ScorableSet, workspace: str | Path | None = None) -> People:
    """The people an evaluation set tests: a synthetic benchmark's model people, the names in its
    scored pairs, or nobody known (a .bin)."""
    what = f"evaluation set {scorable.label!r}"
    path = Path(scorable.path)
    model = _card_model(path if path.is_dir() else path.parent)
    if model is not None:
        return _model_people(model, what, workspace)
    if scorable.names is None:
        return People(what, None, "a .bin holds images only, no names")
    return People(what, frozenset(n for pair in scorable.names for n in pair), "names in its pairs")


@dataclass
class SetOverlap:
    """One evaluation set against the training people."""

    label: str
    pairs: int
    checked: bool
    reason: str = ""
    shared: list[str] = field(default_factory=list)
    pairs_on_train: int | None = None
    #: where the shared people come from: training source (`People.what` / `source`) -> how many
    #: of them it holds, and which of those sources are a face model's source people
    by_source: dict[str, int] = field(default_factory=dict)
    model_sources: list[str] = field(default_factory=list)

    def describe(self) -> str:
        names = ", ".join(self.shared[:SHOWN]) + (f" (+{len(self.shared) - SHOWN:,} more)" if len(self.shared) > SHOWN else "")
        on = "" if self.pairs_on_train is None else f", {self.pairs_on_train:,} of {self.pairs:,} pairs on them"
        who = "1 person" if len(self.shared) == 1 else f"{len(self.shared):,} people"
        where = "; ".join(f"{n:,} from the {src}" for src, n in self.by_source.items() if n)
        return f"evaluation set {self.label!r} shares {who} with the training data ({where}){on}: {names}"

    def advice(self) -> str:
        """What to do about this overlap, by where it comes from."""
        out = []
        if any(self.by_source.get(src) for src in self.model_sources):
            out.append("the synthetic faces are built from photos of people this set tests: fit the face model on "
                       "other people (for LFW: folds 1-3, in the fit form or `face-model fit --folds 1,2,3`) and "
                       "evaluate on the folds it was not fitted on (LFW folds 4-5: register LFW with training folds "
                       "1-3 and choose that set)")
        if any(n for src, n in self.by_source.items() if src not in self.model_sources):
            out.append("the real training set holds people this set tests: train on other people (for LFW: register "
                       "it with training folds 1-3) and evaluate on the rest (folds 4-5 of that registration)")
        return "; ".join(out)


@dataclass
class OverlapReport:
    """Every evaluation set against every training source; `allowed`: the user accepted an overlap."""

    training: list[People]
    sets: list[SetOverlap]
    allowed: bool = False

    @property
    def overlapping(self) -> list[SetOverlap]:
        return [s for s in self.sets if s.shared]

    def notes(self) -> list[str]:
        """What could not be checked, one line each (said, never taken as clean)."""
        out = [f"{p.what} cannot be checked: {p.source}" for p in self.training if p.names is None]
        out += [f"evaluation set {s.label!r} cannot be checked: {s.reason}" for s in self.sets if not s.checked]
        return out

    def summary(self) -> str:
        """One line: the overlap (and whether it was accepted), or that none was found."""
        if self.overlapping:
            text = "; ".join(s.describe() for s in self.overlapping)
            return f"identity overlap accepted: {text}" if self.allowed else f"identity overlap: {text}"
        checked = [s for s in self.sets if s.checked]
        return f"no identity overlap found ({len(checked)} of {len(self.sets)} evaluation sets checked)"

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "overridden": bool(self.allowed and self.overlapping),
                "summary": self.summary(), "notes": self.notes(),
                "training": [{"what": p.what, "people": None if p.names is None else len(p.names), "source": p.source}
                             for p in self.training],
                "sets": [asdict(s) for s in self.sets]}


def _source_label(people: People) -> str:
    """'source people of face model 'x' (12)' for a model, else the set (its `what`)."""
    return people.source if people.synthetic else people.what


def compare_people(training: Sequence[People], scorable: Sequence[ScorableSet], allowed: bool = False,
                   workspace: str | Path | None = None) -> OverlapReport:
    """Each evaluation set's people against the union of the training people that have names. A
    learned model's synthetic benchmark is compared with real training people only: a synthetic
    training set of the same model shares its source bank, never its identities (disjoint seeds)."""
    named = [p for p in training if p.names is not None]
    sets = []
    for s in scorable:
        people = eval_people(s, workspace)
        if people.names is None:
            sets.append(SetOverlap(s.label, s.pairs, False, people.source))
            continue
        compared = [(p, p.names) for p in named if p.names is not None and not (people.synthetic and p.synthetic)]
        train = frozenset().union(*(names for _, names in compared))
        shared = sorted(people.names & train)
        on_train = None
        if s.names is not None and people.source == "names in its pairs":
            on_train = sum(1 for a, b in s.names if a in train or b in train)
        by_source = {_source_label(p): len(people.names & names) for p, names in compared}
        sets.append(SetOverlap(s.label, s.pairs, True, people.source, shared, on_train, by_source,
                               [_source_label(p) for p, _ in compared if p.synthetic]))
    return OverlapReport(list(training), sets, allowed)


def check_launch(config: Mapping[str, Any], workspace: str | Path | None = None,
                 override_hint: str = "set allow_overlap: true") -> OverlapReport:
    """Before any training: every evaluation set of `config` can be scored (a DataError naming the
    set otherwise), and none shares people with the training data unless `config['allow_overlap']`
    (an IdentityOverlapError naming the overlap otherwise, ending with `override_hint`)."""
    specs = [{"path": s} if isinstance(s, (str, Path)) else s for s in (config.get("eval_sets") or [])]
    scorable = check_eval_sets(specs)
    report = compare_people(training_people(config, workspace), scorable, bool(config.get("allow_overlap")), workspace)
    if report.overlapping and not report.allowed:
        advice = "; ".join(dict.fromkeys(s.advice() for s in report.overlapping if s.advice()))
        raise IdentityOverlapError(f"{report.summary()}; its accuracy would measure memory, not recognition. "
                                   f"To fix it: {advice or 'evaluate on other sets'}; "
                                   f"or accept the overlap: {override_hint}")
    return report

