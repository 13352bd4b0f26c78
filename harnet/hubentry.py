"""Builders behind ``hubconf.py``: torch.hub users run exactly the code of ``harnet.load``."""

from __future__ import annotations

import warnings
from typing import Any


def _entry(arch: str, pretrained: bool, num_classes: int | None, device: Any, kwargs: dict) -> Any:
    if "class_num" in kwargs:
        warnings.warn("class_num is deprecated; use num_classes", FutureWarning, stacklevel=3)
        num_classes = kwargs.pop("class_num") if num_classes is None else num_classes
    if "my_device" in kwargs:
        warnings.warn("my_device is deprecated; use device", FutureWarning, stacklevel=3)
        dev = kwargs.pop("my_device")
        device = dev if device is None else device
    if kwargs:
        raise TypeError(f"{arch}() got unexpected keyword arguments: {', '.join(kwargs)}")
    from .loading import load

    return load(arch, pretrained=pretrained, num_classes=num_classes, device=device)


def harnet5(pretrained: bool = True, num_classes: int | None = None, device: Any = None, **kwargs: Any) -> Any:
    """harnet5 (5-s windows at 30 Hz). ``pretrained=True`` loads the self-supervised UK Biobank
    backbone with a fresh, untrained head of ``num_classes`` outputs."""
    return _entry("harnet5", pretrained, num_classes, device, kwargs)


def harnet10(pretrained: bool = True, num_classes: int | None = None, device: Any = None, **kwargs: Any) -> Any:
    """harnet10 (10-s windows at 30 Hz). ``pretrained=True`` loads the self-supervised UK Biobank
    backbone with a fresh, untrained head of ``num_classes`` outputs."""
    return _entry("harnet10", pretrained, num_classes, device, kwargs)


def harnet30(pretrained: bool = True, num_classes: int | None = None, device: Any = None, **kwargs: Any) -> Any:
    """harnet30 (30-s windows at 30 Hz). ``pretrained=True`` loads the self-supervised UK Biobank
    backbone with a fresh, untrained head of ``num_classes`` outputs."""
    return _entry("harnet30", pretrained, num_classes, device, kwargs)
