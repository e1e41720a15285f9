"""Errors that are the user's to fix: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input (a file, a field, an option). The message names it and says what is wrong."""

    exit_code = 2
