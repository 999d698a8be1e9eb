import pytest
import torch

from causalsr.models.intervention import InterventionNet, LatentDiscriminator, adversarial_losses


def make(**kw):
    torch.manual_seed(0)
    args = dict(z_dim=5, ctx_dim=6, hidden=16)
    args.update(kw)
    return InterventionNet(**args)


def test_shapes_and_residual_identity_at_zero_strength():
    net = make()
    z, c = torch.randn(4, 5), torch.tensor([0, 1, 2, 4])
    assert net(z, c).shape == (4, 5)
    assert torch.equal(net(z, c, xi=0.0), z)
    assert torch.equal(net(z, c, xi=torch.zeros(4), ctx=torch.randn(4, 6)), z)
    assert not torch.allclose(net(z, c), z)
    assert net(z, 3).shape == (4, 5)
    with pytest.raises(IndexError):
        net(z, 5)


def test_mask_keeps_untargeted_dims():
    net = make()
    with torch.no_grad():
        net.mask_logits.fill_(-1e4)  # sigmoid -> exactly 0 off target
    z, c = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 2])
    out = net(z, c, ctx=torch.randn(6, 6))
    changed = out != z
    assert torch.equal(changed, torch.nn.functional.one_hot(c, 5).bool())


def test_gradients_reach_all_parts():
    net = make()
    z = torch.randn(8, 5)
    net(z, torch.arange(8) % 5, ctx=torch.randn(8, 6)).pow(2).sum().backward()
    for name in ("mask_logits", "xi", "ada.weight", "ctx_proj.weight", "out.weight"):
        assert net.get_parameter(name).grad.abs().sum() > 0, name


@torch.no_grad()
def finite_difference_omega(net, z, c, weights):
    eps = 1e-6
    total = 0.0
    for b in range(z.shape[0]):
        jac = torch.zeros(5, 5, dtype=torch.float64)
        for i in range(5):
            e = torch.zeros(5, dtype=torch.float64)
            e[i] = eps
            jac[:, i] = (net(z[b : b + 1] + e, c[b : b + 1]) - net(z[b : b + 1] - e, c[b : b + 1]))[0] / (2 * eps)
        total += float(((jac - torch.eye(5, dtype=torch.float64)).abs().sum(0) * weights).sum())
    return total / z.shape[0]


def test_omega_exact_zero_for_identity_and_matches_finite_differences():
    net = make().double()
    z, c = torch.randn(3, 5, dtype=torch.float64), torch.tensor([0, 2, 4])
    assert net.omega(z, c, xi=0.0) == 0
    weights = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0], dtype=torch.float64)
    om = net.omega(z, c, weights)
    assert om > 0
    assert om.item() == pytest.approx(finite_difference_omega(net, z, c, weights), rel=1e-5)
    assert net.omega(z, c).item() == pytest.approx(finite_difference_omega(net, z, c, torch.ones(5)), rel=1e-5)


def test_omega_is_trainable():
    net = make()
    om = net.omega(torch.randn(4, 5), torch.tensor([0, 1, 2, 3]), ctx=torch.randn(4, 6))
    om.backward()
    assert net.mask_logits.grad.abs().sum() > 0 and net.mid.weight.grad.abs().sum() > 0


def test_strength_penalty():
    net = make()
    with torch.no_grad():
        net.xi.copy_(torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]))
    expected = (1 + 4 + 0.25 + 0 + 9) + 0.2 * (1 + 2 + 0.5 + 0 + 3)
    assert net.strength_penalty(beta=0.2).item() == pytest.approx(expected)
    assert net.strength_penalty().item() == pytest.approx(14.25 + 0.65)


def test_discriminator_learns_separable_data():
    torch.manual_seed(0)
    disc = LatentDiscriminator(z_dim=5, hidden=16)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    real, fake = torch.randn(64, 5) + 2.0, torch.randn(64, 5) - 2.0
    first = None
    for _ in range(30):
        disc_loss, gen_loss = adversarial_losses(disc, real, fake)
        first = disc_loss.item() if first is None else first
        opt.zero_grad()
        disc_loss.backward()
        opt.step()
    disc_loss, gen_loss = adversarial_losses(disc, real, fake)
    assert disc(real).shape == (64,)
    assert disc_loss.item() < 0.5 * first and disc_loss.item() < 0.2
    assert gen_loss.item() > 1.0  # the generator's samples are now recognised as fake


def test_generator_loss_trains_intervention_only_through_z_int():
    net, disc = make(), LatentDiscriminator(z_dim=5, hidden=16)
    z = torch.randn(8, 5)
    z_int = net(z, torch.arange(8) % 5)
    disc_loss, gen_loss = adversarial_losses(disc, z, z_int)
    (g_disc,) = torch.autograd.grad(disc_loss, [net.xi], allow_unused=True)
    assert g_disc is None  # inputs are detached for D's loss
    (g_gen,) = torch.autograd.grad(gen_loss, [net.xi])
    assert g_gen.abs().sum() > 0
