"""The HTTP API and web client: ``api.app.create_app(settings)`` builds the FastAPI app."""

import core  # noqa: F401 - first: sets up numpy's BLAS before numpy loads (core/__init__.py)
