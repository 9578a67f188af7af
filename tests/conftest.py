import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))


@pytest.fixture(scope="session")
def random_kwmlp():
    """A 12-block KW-MLP with seeded random weights, perturbed so token mixing matters."""
    from hear_suite.kwmlp.model import KWMLP, KWMLPConfig

    torch.manual_seed(0)
    model = KWMLP(KWMLPConfig())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()
