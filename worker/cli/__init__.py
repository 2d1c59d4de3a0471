"""The ``sidepath`` command line (click): the group and the streaming commands (main.py), the
finite jobs (jobs.py), ``sidepath model`` (models.py), one-line error output (errors.py), and
the configuration a command loads from its context (context.py)."""
__all__: list[str] = []
