"""Facts about the bundles the actinet tool pickles, for the safe reader (.safepickle, .bundles).

Two layouts are known (read from real files and actinet's sources; nothing of actinet is
imported or run):

- **actinet 0.8.0** (``ActivityClassifier.save``, joblib + lzma): an ``actinet.models.ActivityClassifier``
  with ``device``, ``repo_tag``, ``batch_size``, ``window_sec``, ``labels`` (a numpy unicode
  array, in output order), ``verbose``, ``model_weights`` (an ``OrderedDict`` of tensors) and
  ``model`` (None), whose ``hmm`` is an ``actinet.hmm.HMM`` with ``prior``, ``emission``,
  ``transition`` (numpy arrays that joblib writes inline as ``NumpyArrayWrapper`` records), maybe
  ``labels``, and the flags ``uniform_prior``, ``ignore_transition_gaps`` (``handle_transition_gaps``
  in other releases) and ``handle_sleep_transitions``.
- **older actinet**: the HMM as an ``actinet.hmm_utils.HMMSmoother`` (or a plain dict of
  ``prior``/``emission``/``transition``).

The converter finds the state dict and the HMM parameters by their shape (see ``_find_network``
and ``_find_hmm`` in :mod:`.bundles`); this module names the classes that may appear and reads the HMM's
flags, which harnet records in the model directory's provenance.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

#: (module, class) of the actinet objects read as inert stand-ins.
ACTINET_STAND_INS: tuple[tuple[str, str], ...] = (
    ("actinet.models", "ActivityClassifier"),
    ("actinet.hmm", "HMM"),
    ("actinet.hmm_utils", "HMMSmoother"),
)
_HMM_CLASSES = ("actinet.hmm.HMM", "actinet.hmm_utils.HMMSmoother")
_FLAGS = ("uniform_prior", "ignore_transition_gaps", "handle_transition_gaps", "handle_sleep_transitions")


def walk_dicts(obj: Any, seen: set[int] | None = None) -> Iterator[Mapping[str, Any]]:
    """Every mapping reachable from ``obj`` through mappings, lists and tuples (tensors and
    arrays are leaves), each once."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    if isinstance(obj, Mapping):
        seen.add(id(obj))
        yield obj
        for v in obj.values():
            yield from walk_dicts(v, seen)
    elif isinstance(obj, (list, tuple)):
        seen.add(id(obj))
        for v in obj:
            yield from walk_dicts(v, seen)


def hmm_settings(top: Mapping[str, Any]) -> dict[str, Any]:
    """The actinet HMM's class and flags in a read bundle (plain dicts, as ``read_bundle`` gives).

    ``{}`` when the bundle holds no actinet HMM object. harnet's HMM decodes with the prior,
    emission and transition matrices alone; actinet's ``handle_sleep_transitions`` (an extra
    rule applied to sleep/sedentary changes) and transition-gap handling are recorded here so a
    reader of the model's provenance can see them, not re-implemented.
    """
    for d in walk_dicts(top):
        if d.get("__class__") in _HMM_CLASSES:
            out: dict[str, Any] = {"class": d["__class__"]}
            for k in _FLAGS:
                v = d.get(k)
                if isinstance(v, bool) or (hasattr(v, "dtype") and getattr(v, "shape", None) == ()):
                    out[k] = bool(v)
            return out
    return {}
