"""The package as a user meets it: import cost, shipped weights, console script, validator."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import hear_suite.kwmlp as kwmlp
from golden import shipped_weights
from hear_suite.checkpoint import default_weights
from hear_suite.registry import MODELS


def run_python(code, cwd):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          check=True)


def test_import_is_silent_and_light(tmp_path):
    out = run_python("import sys, hear_suite; print(sorted(m for m in sys.modules "
                     "if m.split('.')[0] in ('tensorflow', 'torch', 'heareval')))", tmp_path)
    assert out.stdout.strip() == "[]" and out.stderr == ""


def test_load_model_prints_nothing_and_finds_shipped_weights(tmp_path):
    # from a directory that is not the source tree: the weights must come with the install
    out = run_python("import hear_suite.kwmlp as k; m = k.load_model(); "
                     "print(m.scene_embedding_size, m.timestamp_embedding_size)", tmp_path)
    assert out.stdout.strip() == "1024 64"


def test_shipped_files_load_by_name(tmp_path):
    """``load_model("ast_absolute.pt")`` finds a shipped file from any directory; a name that is
    neither a local nor a shipped file is an error naming it."""
    out = run_python("import hear_suite.ast as a, hear_suite.bagofcodes as b; "
                     "print(a.load_model('ast_absolute.pt').config.pos_embed, "
                     "b.load_model('bagofcodes_w512.pt').config.width)", tmp_path)
    assert out.stdout.split() == ["absolute", "512"]
    with pytest.raises(FileNotFoundError, match="no_such_weights.pt"):
        kwmlp.load_model("no_such_weights.pt")


def test_export_command_round_trip(tmp_path):
    exe = shutil.which("hear-suite")
    assert exe, "console script hear-suite not installed"
    pth, back = tmp_path / "kwmlp.pth", tmp_path / "back.pt"
    subprocess.run([exe, "export", "kwmlp-original", "--out", str(pth)], check=True)
    subprocess.run([exe, "export", "kwmlp-import", "--checkpoint", str(pth), "--out", str(back)],
                   check=True)
    audio = torch.rand(2, 30000) * 2 - 1
    want = kwmlp.get_scene_embeddings(audio, kwmlp.load_model())
    for path in (pth, back):
        assert torch.equal(kwmlp.get_scene_embeddings(audio, kwmlp.load_model(str(path))), want)


def validator():
    exe = shutil.which("hear-validator")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("hear-validator is not installed (scripts/setup.sh should install it)")
        pytest.skip("hear-validator not installed")
    return exe


# every registered module with its default (or no) weights, then every weights/*.pt
VALIDATED = [(m, None) for m in sorted({e.module for e in MODELS.values()})]
VALIDATED += shipped_weights()


@pytest.mark.parametrize("module, weights", VALIDATED,
                         ids=[f"{m.split('.')[-1]}-{w or 'default'}" for m, w in VALIDATED])
def test_hear_validator(module, weights):
    """hear-validator on every module, with its default weights (none for the log-mel floor)
    and with every shipped file."""
    cmd = [validator(), module]
    if weights:
        cmd += ["-m", str(default_weights(weights))]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Looks good!" in result.stdout


def test_shipped_weights_golden_outputs():
    """The shipped weights still give the outputs recorded when they were made."""
    import json

    from golden import GOLDEN, key, mismatch, sample

    recorded = json.loads(GOLDEN.read_text())
    assert sorted(recorded) == sorted(key(m, w) for m, w in shipped_weights())
    for module, weights in shipped_weights():
        problem = mismatch(module, sample(module, weights), recorded[key(module, weights)])
        assert not problem, problem


def test_shipped_weights_match_reference():
    """The shipped weights through the plain re-statement of the spec (tests/kwmlp_reference)."""
    from kwmlp_reference import reference_frames, reference_scene

    from hear_suite.kwmlp import original

    model = kwmlp.load_model()
    sd = original.to_original(model.encoder.state_dict(), model.config)["model_state_dict"]
    audio = torch.rand(1, 16000 * 7 + 123, generator=torch.Generator().manual_seed(1)) * 2 - 1
    frames, n_ts = reference_frames(audio[0], sd, model.frontend)
    emb, _ = kwmlp.get_timestamp_embeddings(audio, model)
    assert (emb[0].double() - frames[:n_ts]).abs().max() < 1e-4
    scene = kwmlp.get_scene_embeddings(audio, model)[0].double().numpy()
    assert np.abs(scene - reference_scene(frames)).max() < 1e-4
