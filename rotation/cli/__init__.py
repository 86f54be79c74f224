"""The command line: ``python -m rotation`` (rotate, status, doctor, grant, validate).

:func:`main` parses the arguments, runs the command and returns its exit code; failures are one
line on stderr (and, with ``--json``, an error object on stdout), never a traceback.
"""

from __future__ import annotations

from rotation.cli.main import emit_reports, main

__all__ = ["emit_reports", "main"]
