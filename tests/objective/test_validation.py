"""Bad arguments fail early with a ValueError that names the argument."""

import pytest
import torch

from rsrl.objective.loss import fused_linear_reward_shaped_loss, reward_shaped_loss

LOGITS = torch.zeros(4, 8)
TARGETS = torch.zeros(4, dtype=torch.long)


@pytest.mark.parametrize(
    "kw,name",
    [
        (dict(beta=-1.0), "beta"),
        (dict(beta=-1.5), "beta"),
        (dict(beta=-1.01, positive_form="exponent"), "beta"),
        (dict(beta=float("nan")), "beta"),
        (dict(lam_top=float("inf")), "lam_top"),
        (dict(lam_tail="0.1"), "lam_tail"),
        (dict(k=0), "k"),
        (dict(k=2.0), "k"),
        (dict(k=True), "k"),
        (dict(positive_form="power"), "positive_form"),
        (dict(reduction="avg"), "reduction"),
        (dict(impl="cuda"), "impl"),
        (dict(ignore_index=-100.0), "ignore_index"),
        (dict(return_stats=1), "return_stats"),
    ],
)
def test_bad_keyword(kw, name):
    with pytest.raises(ValueError, match=f"^{name} "):
        reward_shaped_loss(LOGITS, TARGETS, **kw)


@pytest.mark.parametrize(
    "logits,targets,name",
    [
        (torch.zeros(8), TARGETS, "logits"),
        (torch.zeros(4, 0), TARGETS, "logits"),
        (torch.zeros(4, 8, dtype=torch.long), TARGETS, "logits"),
        ([[0.0] * 8] * 4, TARGETS, "logits"),
        (LOGITS, TARGETS.float(), "targets"),
        (LOGITS, torch.zeros(5, dtype=torch.long), "targets"),
        (LOGITS.view(2, 2, 8), TARGETS, "targets"),
    ],
)
def test_bad_tensor(logits, targets, name):
    with pytest.raises(ValueError, match=f"^{name} "):
        reward_shaped_loss(logits, targets)


@pytest.mark.parametrize(
    "hidden,weight,kw,name",
    [
        (torch.zeros(4, 3), torch.zeros(8, 5), {}, "weight"),
        (torch.zeros(4, 3), torch.zeros(8, 3, dtype=torch.float64), {}, "weight"),
        (torch.zeros(4, 3), torch.zeros(8, 3), dict(chunk_size=0), "chunk_size"),
        (torch.zeros(4, 3), torch.zeros(8, 3), dict(beta=-2.0), "beta"),
        (torch.zeros(3), torch.zeros(8, 3), {}, "hidden"),
    ],
)
def test_bad_fused_argument(hidden, weight, kw, name):
    with pytest.raises(ValueError, match=f"^{name} "):
        fused_linear_reward_shaped_loss(hidden, weight, TARGETS, **kw)


def test_importing_the_package_does_not_import_triton():
    import subprocess
    import sys

    code = (
        "import sys, rsrl.objective; "
        "assert 'triton' not in sys.modules, 'triton imported'; "
        "assert 'ray' not in sys.modules and 'deepspeed' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
