"""Error types shared by every stage; each carries enough context for a one-line message."""

from __future__ import annotations


class RmforgeError(Exception):
    """Base class for user-facing errors (the CLI prints them without a traceback)."""

    exit_code = 1


class ConfigError(RmforgeError):
    """Invalid configuration: unknown key, wrong type, bad override."""

    exit_code = 1


class DataError(RmforgeError):
    """Bad input data, located by file, line/row and field."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None, row_kind: str = "line"):
        self.reason, self.file, self.line, self.field, self.row_kind = message, file, line, field, row_kind
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.line is not None:
            where.append(f"{self.row_kind} {self.line}")
        if self.field:
            where.append(f"field '{self.field}'")
        return (": ".join([", ".join(where), self.reason]) if where else self.reason)

    def located(self, *, file: str | None = None, line: int | None = None,
                row_kind: str | None = None) -> "DataError":
        """Return a copy with missing location parts filled in."""
        return DataError(self.reason, file=self.file or file,
                         line=self.line if self.line is not None else line,
                         field=self.field, row_kind=row_kind or self.row_kind)


class FieldError(DataError):
    """A converter's complaint about one field of one record (location added by the caller)."""

    def __init__(self, field: str, message: str):
        super().__init__(message, field=field)


class OutputExistsError(RmforgeError):
    """Refusal to overwrite an existing output without --overwrite."""


class OutputPathError(RmforgeError):
    """An output path that cannot be used: a folder where a file is expected, an unwritable folder,
    or a folder ``overwrite`` may not replace (rmforge did not create it, or it is ``.``/``$HOME``/``/``)."""


class NonFiniteLossError(RmforgeError):
    """Training stopped because the loss became NaN or infinite (no model is saved from that state)."""


class ModelLoadError(RmforgeError):
    """A model whose files cannot be loaded: a truncated or corrupted weights file, or an unreadable run
    manifest (``manifest.json``)."""


class NonFiniteRewardError(RmforgeError):
    """A model whose weights or rewards are NaN or infinite (the weights are most likely corrupted)."""
