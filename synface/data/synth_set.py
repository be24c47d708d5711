"""A synthetic set on disk, and the synthetic sets of a folder: the one module that knows the layout.

    <set>/dataset.json         the card: what was built, by which face model; written last, so
                               its presence marks a complete set
    <set>/manifest.parquet     path, label, partner, phi and every coefficient of every image
    <set>/build_state.json     the settings of a build under way (a killed build resumes from it)
    <set>/shard.json           a finished shard's card (`generate --shard K/N`): the card of the
                               whole set plus which identities this folder holds; no dataset.json
    <set>/<identity>/<image>   the images

`synface.data.synthetic` builds sets; everything else (training, features, the tables, the pages)
reads them through `SynthSet`. Every file here is read as untrusted: a card that is not a JSON
object, or a manifest that does not load, is a DataError naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from synface.base.files import MAX_JSON_BYTES, read_regular, write_bytes  # never a FIFO: a reader would block
from synface.data.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SynthSet", "synth_sets", "CARD_NAME", "MANIFEST_NAME", "STATE_NAME", "SHARD_CARD_NAME"]

CARD_NAME = "dataset.json"
MANIFEST_NAME = "manifest.parquet"
STATE_NAME = "build_state.json"
SHARD_CARD_NAME = "shard.json"


@dataclass(frozen=True)
class SynthSet:
    """One synthetic set's folder (complete or not); every method reads the disk again."""

    folder: Path

    def __init__(self, folder: str | Path) -> None:
        object.__setattr__(self, "folder", Path(folder))

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def card_path(self) -> Path:
        return self.folder / CARD_NAME

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST_NAME

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_NAME

    def is_complete(self) -> bool:
        """True when the build finished (the card is written last)."""
        return self.card_path.is_file()

    def has_manifest(self) -> bool:
        return self.manifest_path.is_file()

    @property
    def shard_card_path(self) -> Path:
        return self.folder / SHARD_CARD_NAME

    def is_shard(self) -> bool:
        """True when this folder holds a finished shard of a set (its shard card is written last)."""
        return self.shard_card_path.is_file()

    def is_building(self) -> bool:
        """True when a build started here and has not finished (its state is there, no card yet)."""
        return self.state_path.is_file() and not self.is_complete() and not self.is_shard()

    # -- the card
    def card(self) -> dict[str, Any]:
        """The card of a complete set; a DataError naming the folder or file otherwise."""
        if not self.card_path.exists():
            raise DataError(f"{self.folder} is not a complete synthetic set (no {CARD_NAME}; an interrupted build "
                            "resumes with the same command)", path=self.folder)
        return _json_object(self.card_path, "card")

    def shard_card(self) -> dict[str, Any]:
        """The card of a finished shard; a DataError naming the folder or file otherwise."""
        if not self.shard_card_path.exists():
            what = "is a whole set, not a shard" if self.is_complete() else \
                "is not a finished shard (an interrupted shard resumes with its `generate --shard K/N` command)"
            raise DataError(f"{what} (no {SHARD_CARD_NAME})", path=self.folder)
        return _json_object(self.shard_card_path, "shard card")

    def write_shard_card(self, card: dict[str, Any]) -> None:
        write_bytes(self.shard_card_path, json.dumps(card, indent=1).encode("utf-8"))

    def card_or_empty(self) -> dict[str, Any]:
        """The card, or {} when there is none or it does not read (for tables that show what they can)."""
        try:
            return self.card()
        except DataError:
            return {}

    def write_card(self, card: dict[str, Any]) -> None:
        """The card, atomically: a set is complete from this moment on."""
        write_bytes(self.card_path, json.dumps(card, indent=1).encode("utf-8"))

    def identity_count(self) -> int:
        """`num_identities` of the card (at least one more than the highest label)."""
        card = self.card()
        try:
            return int(card["num_identities"])
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"bad {CARD_NAME}: {type(exc).__name__}: {exc}", path=self.card_path) from None

    def face_model(self) -> str:
        """The face model that drew the set ('builtin' when the card names none)."""
        card = self.card()
        config = c if isinstance(c := card.get("config"), dict) else {}
        return str(card.get("model") or config.get("model") or "builtin")

    # -- the manifest
    def read_manifest(self, columns: Sequence[str] = ()) -> "pd.DataFrame":
        """The manifest; a DataError naming it when it does not load, lacks one of `columns`, or is empty
        while `columns` are asked for."""
        import pandas as pd  # noqa: PLC0415

        try:
            frame = pd.read_parquet(self.manifest_path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types
            raise DataError(f"cannot read manifest: {exc}", path=self.manifest_path) from None
        missing = set(columns) - set(frame.columns)
        if missing:
            raise DataError(f"manifest lacks columns {sorted(missing)}", path=self.manifest_path)
        if columns and len(frame) == 0:
            raise DataError("manifest has no rows", path=self.manifest_path)
        return frame

    def write_manifest(self, frame: "pd.DataFrame") -> None:
        from synface.base.files import atomic_path  # noqa: PLC0415

        with atomic_path(self.manifest_path) as tmp:
            frame.to_parquet(tmp, index=False)

    # -- a build's state
    def read_state(self) -> dict[str, Any] | None:
        """The state of a build started here (None when there is none); a DataError naming the file
        when it does not read as a JSON object."""
        if not self.state_path.exists():
            return None
        try:
            data = json.loads(read_regular(self.state_path, MAX_JSON_BYTES, follow_links=True).decode("utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"unreadable build state ({exc}); delete the folder to rebuild", path=self.state_path) from None
        if not isinstance(data, dict):
            raise DataError("build state is not a JSON object; delete the folder to rebuild", path=self.state_path)
        return data

    def write_state(self, state: dict[str, Any]) -> None:
        write_bytes(self.state_path, json.dumps(state, indent=1).encode("utf-8"))


def _json_object(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(read_regular(path, MAX_JSON_BYTES, follow_links=True).decode("utf-8"))  # never a FIFO
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the {what} ({exc})", path=path) from None
    except ValueError as exc:
        raise DataError(f"not valid JSON ({exc})", path=path) from None
    if not isinstance(data, dict):
        raise DataError(f"the {what} is not a JSON object", path=path)
    return data


def synth_sets(base: str | Path) -> list[SynthSet]:
    """The complete synthetic sets directly inside `base` (a workspace's datasets/), by name."""
    base = Path(base)
    if not base.is_dir():
        return []
    return [SynthSet(p) for p in sorted(base.iterdir()) if p.is_dir() and SynthSet(p).is_complete()]
