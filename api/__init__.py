"""The HTTP API and web client: ``api.app.create_app(settings)`` builds the FastAPI app."""
