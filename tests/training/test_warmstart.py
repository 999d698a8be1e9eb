"""graft_context: a collapsed context is replaced by a donor's live one without changing the restorer's output."""
import torch

from causalsr.evaluation.liveness import liveness_report, probe_images
from causalsr.training.warmstart import graft_context
from helpers import tiny_model


def collapsed_model():
    """A tiny model whose context is exactly constant: SCT's LayerNorm scale at zero leaves only its bias."""
    model = tiny_model(2).eval()
    with torch.no_grad():
        model.sct.norm.weight.zero_()
        model.sct.norm.bias.normal_()
    return model


def live_donor():
    torch.manual_seed(5)
    donor = tiny_model(2)
    donor.sct.norm.eps = 1e-30  # the random encoder's ~1e-9 features reach unit scale (test_liveness.healthy_model)
    with torch.no_grad():
        donor.restorer.conditioning.ctx[0].weight.normal_()
    return donor


def test_graft_keeps_the_output_and_revives_the_context():
    lrs, hrs = probe_images(2, n=4, lr_size=16)
    lr = torch.cat(lrs)
    model, donor = collapsed_model(), live_donor()
    with torch.no_grad():
        before = model(lr)
    spread_before = liveness_report(model, lrs, hrs)["parts"]["context_spread"]["value"]
    copied = graft_context(model, donor.state_dict(), [lr])
    model.sct.norm.eps = donor.sct.norm.eps
    with torch.no_grad():
        after = model(lr)
    assert copied > 0 and not model.training
    assert torch.allclose(before, after, atol=1e-5), float((before - after).abs().max())
    parts = liveness_report(model, lrs, hrs)["parts"]
    assert spread_before < 1e-6 < parts["context_spread"]["value"]
    # R has not learnt to read the new context yet: the swap test sees no effect
    assert parts["context_effect"]["value"] < 1e-3
    # and the copied SCT is the donor's
    assert torch.equal(model.sct.adapter.weight, donor.sct.adapter.weight)
