"""Build the configured storage adapter: the one place that chooses between backends."""

from __future__ import annotations

from core.settings import Settings
from core.storage import Storage


def build_storage(settings: Settings) -> Storage:
    """The :class:`Storage` that ``settings.storage.backend`` names.

    ``local`` stores under ``settings.storage_dir``; ``s3`` uses the ``s3_*`` settings.
    Nothing is contacted here: call :meth:`Storage.check` for readiness.
    """
    if settings.storage.backend == "s3":
        # Imported here so local-only processes never load boto3 (slow to import).
        from core.adapters.storage_s3 import S3Storage

        return S3Storage(settings.storage)
    from core.adapters.storage_local import LocalStorage

    return LocalStorage(settings.storage_dir)
