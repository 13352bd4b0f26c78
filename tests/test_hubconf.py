import subprocess
import sys

import pytest
import torch

from conftest import ROOT


def test_torch_hub_local_with_deprecated_kwarg():
    with pytest.warns(FutureWarning, match="class_num is deprecated"):
        m = torch.hub.load(str(ROOT), "harnet10", source="local", pretrained=False, class_num=3)
    with torch.no_grad():
        assert m(torch.zeros(2, 3, 300)).shape == (2, 3)
    assert not m.training


@pytest.mark.parametrize("arch,t", [("harnet5", 150), ("harnet30", 900)])
def test_torch_hub_local_other_archs(arch, t):
    m = torch.hub.load(str(ROOT), arch, source="local", pretrained=False, num_classes=4)
    with torch.no_grad():
        assert m(torch.zeros(1, 3, t)).shape == (1, 4)


def test_unknown_kwarg_is_an_error():
    with pytest.raises(TypeError, match="unexpected keyword"):
        torch.hub.load(str(ROOT), "harnet10", source="local", pretrained=False, nclass=3)


def test_import_harnet_is_cheap():
    code = (
        "import sys, harnet, harnet.io, harnet.hmm, harnet.errors\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'click', 'pandas', 'actipy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(harnet.__version__)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
