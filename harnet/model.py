"""The harnet network: a 1-D pre-activation ResNet with anti-aliased downsampling.

The layer names, order and shapes match the published ssl-wearables checkpoints, so their
state dicts load with ``strict=True`` (see ``docs`` and the tests that lock the names).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from .arch import ARCHITECTURES, SAMPLE_RATE, STAGES, WINDOW_SEC
from .errors import InputShapeError, ModelError



@dataclass(frozen=True)
class HarnetConfig:
    """What travels with a network: its architecture, input geometry and class names."""

    arch: str = "harnet10"
    window_sec: int = 10
    sample_rate: int = SAMPLE_RATE
    num_classes: int = 2
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.arch not in STAGES:
            raise ModelError(f"unknown architecture {self.arch!r}; use one of {', '.join(ARCHITECTURES)}")
        if self.window_sec != WINDOW_SEC[self.arch]:
            raise ModelError(
                f"{self.arch} takes {WINDOW_SEC[self.arch]}-s windows, but the config says "
                f"window_sec={self.window_sec}; fix config.json"
            )
        if self.sample_rate != SAMPLE_RATE:
            raise ModelError(f"harnet networks take {SAMPLE_RATE} Hz input, config says {self.sample_rate}")
        if self.labels and len(self.labels) != self.num_classes:
            raise ModelError(
                f"config has {len(self.labels)} labels but num_classes={self.num_classes}; make them agree"
            )
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))

    @property
    def input_length(self) -> int:
        """Samples per window (T)."""
        return self.window_sec * self.sample_rate

    @classmethod
    def for_arch(cls, arch: str, num_classes: int = 2, labels: Sequence[str] = ()) -> "HarnetConfig":
        if arch not in STAGES:
            raise ModelError(f"unknown architecture {arch!r}; use one of {', '.join(ARCHITECTURES)}")
        if labels and num_classes is None:
            num_classes = len(labels)
        return cls(arch=arch, window_sec=WINDOW_SEC[arch], num_classes=num_classes, labels=tuple(labels))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["labels"] = list(self.labels)
        return d


def arch_for_window(window_sec: int) -> str:
    for arch, w in WINDOW_SEC.items():
        if w == window_sec:
            return arch
    raise ModelError(f"no harnet architecture takes {window_sec}-s windows (5, 10 or 30)")


def downsample_kernel(factor: int, order: int) -> torch.Tensor:
    """A box of length ``factor`` convolved with itself ``order`` times, summing to 1."""
    box = torch.ones(factor, dtype=torch.float64)
    k = box.clone()
    for _ in range(order):
        k = torch.nn.functional.conv1d(
            k.view(1, 1, -1), box.view(1, 1, -1), padding=factor - 1
        ).view(-1)
    return (k / k.sum()).to(torch.float32)


class Downsample(nn.Module):
    """Fixed anti-aliased downsampling: depthwise low-pass then stride (not learned)."""

    def __init__(self, channels: int, factor: int, order: int) -> None:
        super().__init__()
        self.factor = factor
        self.padding = order * (factor - 1) // 2
        if order * (factor - 1) % 2:
            raise ModelError(f"downsample ({factor}, {order}) needs symmetric padding")
        k = downsample_kernel(factor, order)
        self.register_buffer("kernel", k.view(1, 1, -1).repeat(channels, 1, 1).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv1d(
            x, self.kernel, stride=self.factor, padding=self.padding, groups=x.shape[1]
        )


def _conv(cin: int, cout: int) -> nn.Conv1d:
    return nn.Conv1d(cin, cout, kernel_size=5, stride=1, padding=2, padding_mode="circular", bias=False)


class ResBlock(nn.Module):
    """Pre-activation residual block: BN, ReLU, conv, BN, ReLU, conv, plus the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # registration order fixes the state-dict order: bn1, bn2, conv1, conv2
        self.bn1 = nn.BatchNorm1d(channels)
        self.bn2 = nn.BatchNorm1d(channels)
        self.conv1 = _conv(channels, channels)
        self.conv2 = _conv(channels, channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return out + x


def _stage(cin: int, cout: int, n_blocks: int, factor: int, order: int) -> nn.Sequential:
    layers: list[nn.Module] = [_conv(cin, cout)]
    layers += [ResBlock(cout) for _ in range(n_blocks)]
    layers += [nn.BatchNorm1d(cout), nn.ReLU(inplace=True), Downsample(cout, factor, order)]
    return nn.Sequential(*layers)


class FeatureExtractor(nn.Sequential):
    def __init__(self, arch: str) -> None:
        stages = []
        cin = 3
        for cout, n, f, o in STAGES[arch]:
            stages.append(_stage(cin, cout, n, f, o))
            cin = cout
        super().__init__()
        for i, s in enumerate(stages, 1):
            self.add_module(f"layer{i}", s)
        self.out_features = cin


class Classifier(nn.Module):
    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(in_features, 512)
        self.relu = nn.ReLU(inplace=True)
        self.linear2 = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.relu(self.linear1(x)))


class Harnet(nn.Module):
    """A harnet network. Input ``(N, 3, T)`` float32 in g at 30 Hz; output logits ``(N, C)``.

    Attributes set by :func:`harnet.load`: ``config`` (:class:`HarnetConfig`), ``labels``,
    ``hmm`` (an :class:`harnet.hmm.HMM` or ``None``) and ``meta`` (the model directory's
    ``config.json`` as a dict: preprocessing, provenance, licence).
    """

    def __init__(self, config: HarnetConfig) -> None:
        super().__init__()
        self.config = config
        self.feature_extractor = FeatureExtractor(config.arch)
        self.classifier = Classifier(self.feature_extractor.out_features, config.num_classes)
        self.hmm: Any = None
        self.meta: dict[str, Any] = {}
        self._init_weights()

    @property
    def labels(self) -> tuple[str, ...]:
        return self.config.labels

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def check_input(self, x: torch.Tensor) -> None:
        t = self.config.input_length
        if x.dim() != 3 or x.shape[1] != 3 or x.shape[2] != t:
            raise InputShapeError(
                f"{self.config.arch} expects input of shape (N, 3, {t}) "
                f"({self.config.window_sec} s at {self.config.sample_rate} Hz), got {tuple(x.shape)}"
            )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(N, F)`` (F = 512 for harnet5, 1024 otherwise)."""
        self.check_input(x)
        return self.feature_extractor(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build(arch: str = "harnet10", num_classes: int = 2, labels: Sequence[str] = ()) -> Harnet:
    """Build a randomly initialised network (use :func:`harnet.load` for published weights)."""
    if labels:
        num_classes = len(labels)
    return Harnet(HarnetConfig.for_arch(arch, num_classes=num_classes, labels=labels))


def arch_from_state_dict(sd: dict[str, torch.Tensor]) -> str:
    """Tell the architecture from the downsample kernel shapes (they differ by window)."""
    try:
        k1 = sd["feature_extractor.layer1.5.kernel"].shape[-1]
        k5 = sd["feature_extractor.layer5.3.kernel"].shape
    except KeyError as e:
        raise ModelError(f"state dict has no {e.args[0]}; is it a harnet checkpoint?") from None
    if k5[0] == 512:
        return "harnet5"
    return "harnet10" if k1 == 4 else "harnet30"
