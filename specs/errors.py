"""Typed errors shared by every part of Fusion.

Library code raises these; only the CLI turns them into one line of text, a hint and an exit code.
No side effects here.
"""

from __future__ import annotations


class FusionError(Exception):
    """Base of every error Fusion reports to a person. ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(FusionError):
    """The user's input (a file, an argument) is wrong: exit code 2."""

    exit_code = 2


class Location:
    """Where something is in a source file: ``file:line:column`` (1-based; 0 means unknown)."""

    __slots__ = ("file", "line", "column")

    def __init__(self, file: str, line: int = 0, column: int = 0) -> None:
        self.file = file
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.line and self.column:
            return f"{self.file}:{self.line}:{self.column}"
        if self.line:
            return f"{self.file}:{self.line}"
        return self.file

    def __repr__(self) -> str:
        return f"Location({str(self)!r})"


class SpecError(InputError):
    """A spec file is wrong. Renders as ``file:line:col: key.path: what is wrong``."""

    def __init__(
        self,
        message: str,
        *,
        where: Location | None = None,
        path: str = "",
        hint: str | None = None,
    ) -> None:
        self.where = where
        self.path = path
        self.what = message
        text = message
        if path:
            text = f"{path}: {text}"
        if where is not None:
            text = f"{where}: {text}"
        super().__init__(text, hint=hint)


class SpecErrors(InputError):
    """Several spec errors found in one pass; each is reported on its own line."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors), hint=errors[0].hint if errors else None)
