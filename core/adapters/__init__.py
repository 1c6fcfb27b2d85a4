"""Adapters: the I/O implementations of core's ports (storage, database, job queue).

Only modules in this package may import I/O libraries (boto3, sqlalchemy, redis...); the
architecture test keeps the rest of ``core`` pure.
"""
