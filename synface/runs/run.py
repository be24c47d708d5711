"""One run folder, readable while the run is writing it: its files, its trainer's lock, its status.

    <workspace>/runs/<run-id>/           run id = UTC timestamp + short name (sorts by start)
        config.json                      the TrainConfig
        metrics.jsonl                    append-only: train / eval / status records
        status.json                      written atomically: status, pid, progress, ETA
        eval.json                        latest evaluation of each verification set (`record_eval`)
        study.json                       reproduce's tag: the studies and grid cells the run serves
        checkpoints/last.pt              end of the last epoch (or where a stop landed)
        log.txt                          stdout/stderr of a background run
        STOP                             present = the loop stops at the next step
        .lock                            held (flock) by the training process; holds its pid

Every method re-reads the disk, so the trainer, the app and the command line may each hold a `Run`
of one folder. Finding, listing and creating runs is `synface.runs.registry`'s; archiving and
deleting them `synface.runs.manage`'s. No Streamlit here.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from synface.base.files import append_line, read_json, read_regular, utc_now, write_bytes, write_json
from synface.base.processes import pid_alive
from synface.data.errors import DataError
from synface.runs import run_lock
from synface.runs.run_lock import RunLocked, folder_gone

if TYPE_CHECKING:
    from synface.eval.verification import VerificationResult

__all__ = ["Run", "read_config_file", "ACTIVE_STATES", "FINAL_STATES", "RunLocked"]

ACTIVE_STATES = ("starting", "running")
FINAL_STATES = ("finished", "failed", "stopped")


class Run:
    """One run folder; every method re-reads the disk, so any process may use it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def eval_path(self) -> Path:
        return self.path / "eval.json"

    @property
    def study_path(self) -> Path:
        return self.path / "study.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    @property
    def stop_path(self) -> Path:
        return self.path / "STOP"

    @property
    def lock_path(self) -> Path:
        return self.path / run_lock.LOCK_NAME

    # -- the trainer's lock (synface.runs.run_lock)
    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the folder for one training process; RunLocked naming the holder's pid otherwise."""
        return run_lock.hold(self.path)

    def locked_by(self) -> dict[str, Any] | None:
        """{'pid', 'host', 'since'} of the live process training here, None when there is none."""
        return run_lock.holder(self.path)

    def require_folder(self) -> None:
        """FileNotFoundError (`folder_gone`) when the folder is no longer there. Every write into the
        folder checks this first, so a folder deleted or archived under a process is never re-created."""
        if not self.path.is_dir():
            raise folder_gone(self.path)

    def check_unlocked(self) -> None:
        """RunLocked when a live process trains in this folder (before starting a second one)."""
        holder = self.locked_by()
        if holder is not None:
            raise RunLocked(run_lock.locked_message(self.path, holder))

    def config(self) -> dict[str, Any]:
        """config.json; FileNotFoundError when there is none, a DataError naming the file and what
        is wrong when it does not parse or holds no JSON object."""
        return read_config_file(self.config_path)

    def write_config(self, config: Mapping[str, Any]) -> None:
        self.require_folder()
        write_json(self.config_path, dict(config))

    def write_file(self, name: str, data: Any) -> None:
        """`data` as the JSON file `name` of the folder (atomically), e.g. a launch's identity check."""
        self.require_folder()
        write_json(self.path / name, data)

    # -- metrics
    def append_metric(self, record: Mapping[str, Any]) -> None:
        """One JSON line (`append_line`: a torn last line never swallows this record)."""
        self.require_folder()
        append_line(self.metrics_path, json.dumps(dict(record), allow_nan=True))

    def _lines(self) -> list[tuple[bytes, dict[str, Any] | None]]:
        """(line, record or None when the line is not a JSON object: cut short by kill -9, torn)."""
        try:
            data = self.metrics_path.read_bytes()
        except OSError:
            return []
        out = []
        for raw in filter(bytes.strip, data.split(b"\n")):
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                rec = None
            out.append((raw, rec if isinstance(rec, dict) else None))
        return out

    def prune_metrics(self, step: int, evals_at_step: bool = False) -> int:
        """Drop the train and eval records after global step `step` (and the eval records at it, with
        `evals_at_step`), and unreadable lines; returns how many went. Status records stay.

        Why: a run killed after its last checkpoint logged steps the resume trains again; without
        this, metrics.jsonl would hold those steps twice."""
        def stale(rec: dict[str, Any] | None) -> bool:
            at, kind = (rec or {}).get("step"), (rec or {}).get("type")
            return rec is None or kind in ("train", "eval") and isinstance(at, (int, float)) and (
                at > step or (kind == "eval" and evals_at_step and at == step))

        lines = self._lines()
        kept = [raw for raw, rec in lines if not stale(rec)]
        if len(kept) < len(lines):
            self.require_folder()
            write_bytes(self.metrics_path, b"".join(raw + b"\n" for raw in kept))
        return len(lines) - len(kept)

    def read_metrics(self, kind: str | None = None) -> list[dict[str, Any]]:
        """All readable records (optionally of one `type`); a partial or garbled line is skipped."""
        return [rec for _, rec in self._lines() if rec is not None and (kind is None or rec.get("type") == kind)]

    # -- status
    def raw_status(self) -> dict[str, Any]:
        data = read_json(self.status_path, {})
        return data if isinstance(data, dict) else {}

    def write_status(self, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into status.json (atomic replace) and stamp `updated`."""
        data = self.raw_status()
        data.update(fields)
        data["updated"] = utc_now()
        self.require_folder()
        write_json(self.status_path, data)
        return data

    def status(self) -> dict[str, Any]:
        """status.json, with an active run whose process is gone reported as failed."""
        data = self.raw_status()
        if not data:
            data = {"status": "unknown" if not self.config_path.exists() else "created"}
        state = data.get("status")
        same_host = data.get("host") in (None, socket.gethostname())
        if state in ACTIVE_STATES and same_host and not pid_alive(data.get("pid")):
            data = dict(data, status="failed",
                        message=f"training process {data.get('pid')} ended without reporting (killed?); "
                                f"resume with: python -m synface train --resume {self.id}")
        return data

    def stop_requested(self) -> bool:
        return self.stop_path.exists()

    def write_stop(self) -> None:
        """Ask the trainer to stop at its next step (the STOP file, replaced atomically: a link
        planted at its name is replaced, never written through)."""
        self.require_folder()
        write_bytes(self.stop_path, (utc_now() + "\n").encode())

    # -- evaluations
    def read_eval(self) -> dict[str, Any]:
        """eval.json: set name -> the last evaluation of that set as stored (epoch, step, who scored
        it, and the result's `to_dict`; `VerificationResult.from_dict` reads one); {} when none."""
        data = read_json(self.eval_path, {})
        return data if isinstance(data, dict) else {}

    def record_eval(self, name: str, result: "VerificationResult", *, epoch: int, step: int,
                    source: Mapping[str, Any] | None = None, timing: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Keep an evaluation of set `name`: the full result, with its ROC, in eval.json (replacing
        that set's previous one) and a compact record in metrics.jsonl (the accuracy curve). The one
        writer of both: the trainer's evaluations and `python -m synface eval --run` come here.
        `source` (who scored it, the checkpoint, an accepted identity overlap) goes into both,
        `timing` into the record only. Returns the record."""
        source = dict(source or {})
        held = self.read_eval()
        held[name] = {"epoch": epoch, "step": step, **source, **result.to_dict()}
        self.require_folder()
        write_bytes(self.eval_path, (json.dumps(held, indent=1) + "\n").encode("utf-8"))
        record = {
            "type": "eval", "set": name, "epoch": epoch, "step": step, **source, **(timing or {}), "time": time.time(),
            "mean_accuracy": float(result.mean_accuracy), "std_accuracy": float(result.std_accuracy),
            "tar_at_far": float(result.tar_at_far), "far_target": float(result.far_target),
            "auc": float(result.auc), "num_pairs": int(result.num_pairs), "folds": int(len(result.fold_accuracies)),
        }
        self.append_metric(record)
        return record

    # -- reproduce's study tag
    def study_tag(self) -> dict[str, Any]:
        """study.json: {'key', 'seed', 'scale', 'label', 'cells': {study: grid cell}}; {} for a run
        `reproduce` did not tag (or a tag that does not read as a JSON object)."""
        data = read_json(self.study_path, {})
        return data if isinstance(data, dict) else {}

    def is_smoke(self, tag: Mapping[str, Any] | None = None) -> bool:
        """True for a run of a smoke test (`reproduce --scale tiny`), as its study tag (`tag`, when
        already read) says; lists hide such runs by default."""
        return (self.study_tag() if tag is None else tag).get("smoke") is True

    def is_tagged(self) -> bool:
        """True when study.json exists (readable or not): the run belongs to a study."""
        return self.study_path.exists()

    def tag_study(self, study: str, cell: Mapping[str, Any], **fields: Any) -> None:
        """Add (or update) `study`'s grid cell in the tag, with `fields` (key, seed, scale, label);
        one run may serve several studies. config.json stays a plain TrainConfig, so a resume works."""
        tag = self.study_tag()
        tag.update(fields)
        cells = c if isinstance(c := tag.get("cells"), dict) else {}
        cells[study] = dict(cell)
        tag["cells"] = cells
        self.require_folder()
        write_bytes(self.study_path, (json.dumps(tag, indent=1) + "\n").encode("utf-8"))


def read_config_file(path: Path) -> dict[str, Any]:
    """A run's config.json as a dict (see `Run.config`)."""
    try:
        text = read_regular(path, limit=16 << 20, follow_links=True).decode("utf-8")  # never blocks on a FIFO
    except FileNotFoundError:
        raise FileNotFoundError(f"no config.json in {path.parent}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read run config ({exc})", path=path) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DataError(f"run config is not valid JSON ({exc})", path=path) from None
    if not isinstance(data, dict):
        raise DataError(f"run config must be a JSON object of keys to values, got {type(data).__name__}", path=path)
    return data
