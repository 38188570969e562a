"""Errors the command line reports as one line (exit 2) instead of a traceback; kept free of
heavy imports so the CLI can name them before anything is loaded."""


class DataError(ValueError):
    """The dataset source cannot give what the study asks for (memlab/components/data.py)."""
