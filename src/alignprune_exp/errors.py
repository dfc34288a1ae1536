"""User-facing errors: the CLI prints their message as one line and exits with status 2."""


class AlignPruneError(Exception):
    """A problem with the user's input (config, data, label files) that names the fix."""


class DataError(AlignPruneError):
    """Missing, malformed or mismatched data or label files."""


class ConfigError(AlignPruneError):
    """A configuration value that cannot work."""
