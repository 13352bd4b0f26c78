"""The one compile setting of harnet's kernels: numba without fastmath, releasing the GIL, cached on disk."""

from __future__ import annotations

import numba

_OPTIONS = dict(nogil=True, cache=True)


def kernel(fn=None, **kw):  # type: ignore[no-untyped-def]
    """``numba.njit(nogil=True, cache=True, **kw)``, bare or with keywords (no fastmath: IEEE
    operations in the written order, no fused multiply-add)."""
    if fn is None:
        return lambda f: numba.njit(**_OPTIONS, **kw)(f)
    return numba.njit(**_OPTIONS)(fn)
