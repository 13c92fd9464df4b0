"""The desktop app (the only package that imports Qt)."""

from ._refcount_guard import guard_bool_refcounts

guard_bool_refcounts()
