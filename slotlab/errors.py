"""The error kinds slotlab's library code raises for input the user must fix (the CLI prints them as ``error: ...``
with exit status 2). Not part of the paper."""


class UserError(Exception):
    """Base of every error caused by input the user must fix (a file, a value, a name): the CLI prints it as one
    ``error:`` line and exits 2. Any other exception is a bug in slotlab."""


class FileAccessError(UserError, OSError):
    """A file or folder the user named, or one slotlab writes into a folder the user chose, cannot be read or
    written (missing, a folder, no permission, a full disk); the message names the path."""


def file_access_error(path: object, action: str, error: OSError) -> FileAccessError:
    """``cannot <action> <path>: <reason>``, keeping the errno of ``error`` (raise it ``from error``)."""
    e = FileAccessError(f"cannot {action} {path}: {error.strerror or error}")
    e.errno = error.errno
    return e


class ConfigError(UserError, ValueError):
    """A config file or override that cannot be used; the message names the key and what to do."""


class NonFiniteOutputError(UserError, ValueError):
    """A model gave NaN / Inf outputs (a diverged or damaged checkpoint): they are reported as such, never scored."""


class RunDirError(UserError, RuntimeError):
    """A run folder that cannot be created, written or resumed (:mod:`slotlab.runs`, :mod:`slotlab.run_lock`)."""


class UsageError(UserError, ValueError):
    """A command-line flag that does not apply to the model or run it is given for."""
