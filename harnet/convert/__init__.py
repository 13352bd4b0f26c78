"""Published checkpoints and classifier bundles -> harnet model directories, safely.

:func:`convert` (:mod:`.bundles`: the formats of the asleep, actinet and stepcount tools and SSL
checkpoints) reads pickles only through the allow-listed unpickler of :mod:`.safepickle`
(:func:`read_bundle`).
"""

from __future__ import annotations

from .bundles import LICENCE, convert
from .safepickle import STAND_IN_CLASSES, read_bundle

__all__ = ["convert", "read_bundle", "LICENCE", "STAND_IN_CLASSES"]
