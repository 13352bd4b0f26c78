"""torch.hub entry points: the same builders as ``harnet.load`` (no logic of its own)."""

dependencies = ["torch", "numpy", "safetensors", "huggingface_hub"]

from harnet.hubentry import harnet5, harnet10, harnet30  # noqa: E402,F401
