"""The one wording for a data file of a format this release does not read.

Why: after an upgrade (or a downgrade, or a restore from another release's backup) the admin must
see at once whether the file is newer than this station, older than anything it can migrate, or
simply not the file it should be; "not format 1" says none of that.
"""

from __future__ import annotations


def format_problem(what: str, found: object, supported: int) -> str | None:
    """None when ``found`` is ``supported``, else one sentence an admin can act on.

    Args:
        what: the file in words (``"the device registry"``).
        found: the format or version the file records (anything, it is untrusted).
        supported: the one this release reads and writes.
    """
    if found == supported and type(found) is int:
        return None
    if type(found) is int and found > supported:
        return (
            f"{what} was written by a newer release of the station (format {found}; this"
            f" release reads format {supported}): run the newer release, or restore a backup"
            " made by this one"
        )
    if type(found) is int:
        return (
            f"{what} has format {found}, older than this release can read (format"
            f" {supported}): upgrade through the release in between"
        )
    return f"{what} names no format this station knows ({found!r}): is it the right file?"
