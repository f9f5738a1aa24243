"""Errors that reach the user as one line and exit status 2 (no traceback)."""


class UserError(Exception):
    """Bad input from the user: a case file, a CLI flag, a config value.

    The message is printed as it is, on one line, by the CLI; it should name
    the file, the entry (case id) and the field where that makes sense.
    """


class TruthError(UserError):
    """The truth engine cannot certify a learning coefficient for this input
    (degenerate polynomial, unsupported shape, ...). The message says why."""


class UnsupportedTarget(UserError):
    """An estimator cannot handle this target (too large, no closed form, ...)."""
