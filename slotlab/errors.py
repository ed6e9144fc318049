"""The error kinds slotlab's library code raises for input the user must fix (the CLI prints them as ``error: ...``
with exit status 2). Not part of the paper."""


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and what to do."""
