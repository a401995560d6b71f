"""Readers, one module per format family, each returning the data model of ``wattscape.models.dims``.

Every reader either handles a quirk of its input and records it (a short sentence in a list of
quirks, later joined into the run attribute ``quirks``) or refuses the input with an
:class:`IngestError` whose message names the file and, where it applies, the line.
"""

from __future__ import annotations

import os


class IngestError(ValueError):
    """Input that a reader refuses; the message names the file (and line, when known).

    Parameters
    ----------
    message : str
        What is wrong.
    path : path, optional
        The file at fault.
    line : int, optional
        1-based line number in that file.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}, line {line}"
            where += ": "
        super().__init__(f"{where}{message}")
