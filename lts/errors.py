"""One exception type for every user-facing failure.

The CLI prints ``str(err)`` on one line and exits with status 2, so messages must be a single,
self-contained sentence that names the offending field or file.
"""


class LtsError(ValueError):
    """A bad input (config, space file, reference data, ...) with a one-line explanation."""


class ConfigError(LtsError):
    """An impossible or malformed architecture config; the message names the field."""
