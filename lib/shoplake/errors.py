"""The error every bad input raises: a wrong config key, a landing file off the contract, data off its table's spec.

Entry points print such an error as one line that names the file, row, field or key,
and exit with code 2 (:func:`shoplake.entry.exit_cleanly`), instead of a traceback.
"""


class InputError(ValueError):
    """Bad input; the message names where it is."""
