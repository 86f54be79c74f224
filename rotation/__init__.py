"""pat-rotator: rotate Databricks PATs of Azure service principals, unattended and safely.

Importing this package is cheap: it pulls in no Azure SDK, httpx or pydantic. The entry points
are the CLI (``python -m rotation``) and the Function App (``function_app.py``).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
"""The release; pyproject.toml reads it from here."""
