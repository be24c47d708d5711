"""One exception type for every malformed real-data input.

Readers raise `DataError` (a `ValueError`) instead of whatever KeyError, IndexError or
struct.error the parsing happened to hit, so callers (the app, the CLI) can catch one type and
show a message that names the file and line to fix.
"""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad or missing input data; `path` and 1-based `line` say where, when known."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.path or ""
        if self.line is not None:
            where = f"{where} line {self.line}" if where else f"line {self.line}"
        return f"{where}: {self.message}" if where else self.message

    def __str__(self) -> str:
        return self._format()

    def __reduce__(self):
        # Keeps the keyword-only fields when the error crosses a process boundary (DataLoader).
        return (_rebuild, (self.message, self.path, self.line))


def _rebuild(message: str, path: str | None, line: int | None) -> DataError:
    return DataError(message, path=path, line=line)
