"""The exception hierarchy: one root, subclasses that also inherit the matching built-in."""

from __future__ import annotations

from multiplan.i18n import message


class MultiplanError(Exception):
    """Root of every error multiplan raises on purpose.

    ``key`` names the message in :mod:`multiplan.i18n`; ``params`` fill it in. ``str()`` renders it
    in the active language, so the CLI and the web app show the same words.
    """

    def __init__(self, key: str, **params: object) -> None:
        self.key = key
        self.params = params
        super().__init__(key)

    def render(self, lang: str | None = None) -> str:
        return message(self.key, lang, **self.params)

    def __str__(self) -> str:
        return self.render()


class SpecError(MultiplanError, ValueError):
    """A layer spec, rule file or option is invalid."""


class InputError(MultiplanError, ValueError):
    """A plan file (or its archive) cannot be loaded as given."""


class ArchiveError(InputError):
    """An archive is corrupt or unsafe to unpack."""


class CRSError(InputError):
    """The coordinate reference system cannot be known."""


class StorageError(MultiplanError, OSError):
    """The store cannot be reached, is not initialised, or a write failed."""


class NotFoundError(MultiplanError, LookupError):
    """A layer, version or record does not exist."""


class SchedulerError(MultiplanError, ConnectionError):
    """The Dask scheduler cannot be reached."""
