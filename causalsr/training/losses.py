"""The CausalSR objective: the seven terms of Eq. 22-23, the auxiliary named-factor
loss, Eq. 20's adversarial terms and the Eq. 24 dynamic weights."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import MultivariateNormal
from torch.func import functional_call

from causalsr.causal.counterfactuals import generate_counterfactual
from causalsr.data.degradations import DegradationParams, degrade_batch
from causalsr.factors import N_NAMED, normalise
from causalsr.models.intervention import adversarial_losses
from causalsr.training.weights import DynamicWeights


@dataclass
class LossConfig:
    """Base weights lambda_i0 of Eq. 22/24 and the hyperparameters of each term."""

    w_rec: float = 1.0        # L_rec (restoration + degradation consistency), weight fixed at 1 as in Eq. 22
    w_causal: float = 1e-3    # lambda_1: KL - entropy
    w_cf: float = 0.1         # lambda_2
    w_int: float = 0.05       # lambda_3
    w_con: float = 0.01       # lambda_4
    w_struct: float = 1e-4    # lambda_5
    w_sem: float = 0.01       # lambda_6
    w_aux: float = 0.1        # named-factor alignment (our addition)
    w_adv: float = 0.01       # Eq. 20 adversarial term for psi
    w_consistency: float = 0.01  # weight of L_rec's degradation-consistency part (f_y) beside the restoration part
    grad_gamma: float = 0.1   # gamma in L_rec's gradient term
    rec_norm: str = "l2"      # "l2" as Eq. 23; "l1" trains faster for PSNR (a listed deviation)
    entropy_weight: float = 0.0  # extra entropy bonus; the KL already holds -H(q), so 0 counts it once
    sem_beta: float = 1.0     # beta in L_sem's second term
    sem_batch: int = 0        # samples used by L_sem's first term (0 = whole batch); it is the costliest term on CPU
    contrast_tau: float = 0.1
    ctx_contrast: float = 1.0  # weight of L_sem's InfoNCE between C(Y) and C(X): a constant C cannot satisfy it
    # Restorer conditioning (issue 13): with probability p_oracle R is told the true named factors,
    # jittered by the posterior's own standard deviation; otherwise the posterior mean, as at inference.
    p_oracle: float = 0.5
    contrast_lambda: float = 1.0
    momentum: float = 0.99    # Alg. 2 line 20
    # Algorithm 1
    cf_alpha0: float = 0.02
    cf_beta: float = 0.01
    cf_gamma: float = 0.1
    cf_delta: float = 0.05
    cf_lambda: float = 0.004
    cf_every: int = 1         # run Algorithm 1 every k steps (CPU budget); 1 = every step
    # psi's reward for the KL step alpha (pixel RMS), paid only up to cf_budget: sem_cf alone is
    # minimised by alpha = 0 (h_psi collapsed to 5e-5), an unbounded reward saturates h at 1 (0.99)
    cf_div: float = 1.0
    # 3/4 of cf_alpha0: the hinge holds h_psi near 0.75 instead of at 0 or 1. At 0.01 (h 0.5) Algorithm 1's
    # line 15 never fired (x3, 500 steps); at h 0.93 it fired in 37% of draws (x4)
    cf_budget: float = 0.015
    # Eq. 24 dynamic weights
    dyn_gamma: float = 0.5
    dyn_alpha: float = 1.0
    t_update: int = 100
    # Eq. 27 curriculum
    t_warm: int = 0
    warm_sigma: float = 1.5
    # Eq. 20 / 21
    int_lambda1: float = 1.0
    int_lambda2: float = 0.01
    int_lambda3: float = 0.01
    int_margin: float = 0.1   # an intervention must move its target factor by this much (normalised units)
    int_effect: float = 1.0   # weight of that hinge: without it the fit term's optimum is g_psi = identity


@dataclass
class LossOutput:
    """One training step's losses.

    terms: unweighted scalar terms (for logging and Eq. 24).
    block_losses: one weighted scalar per parameter block. They are
        gradient-isolated: block b's loss reaches only block b's parameters
        (others' outputs are detached, other modules run with frozen weights),
        so one backward of their sum gives each block exactly the gradient of
        its own loss subset (Algorithm 2 lines 9, 13, 17).
    weights: the current Eq. 24 weights.
    """

    terms: dict[str, torch.Tensor]
    block_losses: dict[str, torch.Tensor]
    weights: dict[str, float]


def frozen_call(module: nn.Module, *args, **kwargs):
    """Call `module` with its parameters detached: gradients reach the inputs only."""
    params = {k: v.detach() for k, v in module.named_parameters()}
    buffers = dict(module.named_buffers())
    return functional_call(module, {**params, **buffers}, args, kwargs)


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along H and W (the nabla of L_rec)."""
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, gamma: float, norm: str = "l2") -> torch.Tensor:
    """||target - pred||^2 (or L1) + gamma ||nabla target - nabla pred||_1 (the form of Eq. 23's L_rec)."""
    diff = pred - target
    base = diff.pow(2).mean() if norm == "l2" else diff.abs().mean()
    gp, gt = image_gradients(pred), image_gradients(target)
    grad = sum((a - b).abs().mean() for a, b in zip(gp, gt))
    return base + gamma * grad


def info_nce(query: torch.Tensor, keys: torch.Tensor, tau: float) -> torch.Tensor:
    """-log exp(sim(q_i, k_i)/tau) / sum_n exp(sim(q_i, k_n)/tau) with cosine similarity; batch negatives."""
    logits = F.normalize(query, dim=1) @ F.normalize(keys, dim=1).t() / tau
    return F.cross_entropy(logits, torch.arange(query.shape[0], device=query.device))


def hierarchical_contrastive(f_q, f_k, g_q, g_k, tau: float, lam: float) -> torch.Tensor:
    """Eq. 16: image-level InfoNCE (f(X) vs f(X_cf)) + lambda * degradation-level InfoNCE (g(Z) vs g(Z_cf))."""
    return info_nce(f_q, f_k, tau) + lam * info_nce(g_q, g_k, tau)


def structure_penalty(cov: torch.Tensor) -> torch.Tensor:
    """L_struct = ||Sigma - diag(diag(Sigma))||_F (Eq. 23), batch mean."""
    off = cov - torch.diag_embed(torch.diagonal(cov, dim1=-2, dim2=-1))
    return off.flatten(1).norm(dim=1).mean()


def named_factor_nll(q: MultivariateNormal, factors: torch.Tensor) -> torch.Tensor:
    """Auxiliary loss: -log q(named dims = normalised true factors), using the marginal of the full Sigma.

    Samples whose factors are unknown (NaN, e.g. paired data) are skipped.
    """
    known = torch.isfinite(factors).all(dim=1)
    if not known.any():
        return q.mean.sum() * 0.0
    target = normalise(factors[known])
    marginal = MultivariateNormal(q.mean[known, :N_NAMED], scale_tril=q.scale_tril[known, :N_NAMED, :N_NAMED])
    return -marginal.log_prob(target).mean()


def smoothed(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """X~ of Eq. 27: a Gaussian-smoothed ("simplified") image."""
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(x.shape[1], 1, 1, 1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), k, groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), k.transpose(2, 3), groups=x.shape[1])


@dataclass
class _Step:
    """One call's inputs and the losses built so far (the parts of `Objective.__call__` share it)."""

    batch: dict
    hr: torch.Tensor
    lr: torch.Tensor
    zero: torch.Tensor
    w: DynamicWeights
    terms: dict
    blocks: dict
    theta: torch.Tensor
    psi: torch.Tensor
    # set by the parts in call order (`_start` fills them with `zero` until then)
    pooled: torch.Tensor
    ctx: torch.Tensor
    z: torch.Tensor
    mean_lr: torch.Tensor
    tokens_hr: torch.Tensor
    sem_ctx: torch.Tensor
    tokens: torch.Tensor | None = None


class Objective:
    """Eq. 22: L_total = L_rec + l1 L_causal + l2 L_cf + l3 L_int + l4 L_con + l5 L_struct + l6 L_sem.

    Call as `objective(batch, step, total_steps)`; batch holds hr, lr, factors
    (physical, NaN if unknown) and params (degradation parameter dicts, used
    to produce Y_cf with the real pipeline).
    """

    TERMS = ("causal", "cf", "int", "con", "struct", "sem")

    def __init__(self, model, cfg: LossConfig):
        self.model, self.cfg, self.rec_norm = model, cfg, cfg.rec_norm
        base = {k: getattr(cfg, f"w_{k}") for k in self.TERMS}
        self.weights = DynamicWeights(base, cfg.dyn_gamma, cfg.dyn_alpha, cfg.t_update)

    def state_dict(self) -> dict:
        return {"weights": self.weights.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.weights.load_state_dict(state["weights"])

    def __call__(self, batch: dict, step: int, total_steps: int) -> LossOutput:
        m, c = self.model, self.cfg
        st = self._start(batch, step)
        if m.cfg.plain:
            sr = m.restore(st.lr, None, None, st.lr.new_zeros(st.lr.shape[0], m.cfg.sct_dim))
            st.terms["rec"] = reconstruction_loss(sr, st.hr, c.grad_gamma, self.rec_norm)
            st.blocks["theta"] = c.w_rec * st.terms["rec"]
            return LossOutput(st.terms, st.blocks, {})
        self._restoration_and_posterior(st)
        self._semantic_context(st)
        if m.use_cf and step % max(c.cf_every, 1) == 0:
            self._counterfactual_terms(st)
        else:
            st.terms["sem"] = c.sem_beta * st.sem_ctx
        st.theta = st.theta + st.w["sem"] * c.sem_beta * st.sem_ctx
        if m.use_int:
            self._intervention_terms(st)
        st.blocks["theta"], st.blocks["psi"] = st.theta, st.psi
        w = self.weights
        w.observe({k: float(v.detach()) for k, v in st.terms.items() if k in self.TERMS})
        w.maybe_update(step, total_steps)
        return LossOutput(st.terms, st.blocks, dict(w.current))

    def _start(self, batch: dict, step: int) -> _Step:
        c = self.cfg
        hr, lr = batch["hr"], batch["lr"]
        zero = hr.sum() * 0.0
        # Eq. 27 warm-up curriculum: X_t = a_t X + (1 - a_t) X~, a_t = min(1, t / T_warm).
        if c.t_warm > 0 and step < c.t_warm:
            a = step / c.t_warm
            hr = a * hr + (1 - a) * smoothed(hr, c.warm_sigma)
        blocks = {"phi": zero, "theta": zero, "psi": zero, "disc": zero}
        return _Step(batch=batch, hr=hr, lr=lr, zero=zero, w=self.weights, terms={}, blocks=blocks,
                     theta=zero, psi=zero, pooled=zero, ctx=zero, z=zero, mean_lr=zero, tokens_hr=zero,
                     sem_ctx=zero)

    def _restoration_and_posterior(self, st: _Step) -> None:
        """L_rec (theta) with the inference posterior's Z, and phi's terms: KL, structure, named factors."""
        m, c, w, hr, lr, terms = self.model, self.cfg, st.w, st.hr, st.lr, st.terms
        # Context C (theta: SCT) from the LR, as at inference; HR context is the stop-gradient target.
        st.tokens, st.pooled = m.context(lr)
        st.ctx = st.pooled.detach()
        # Restoration with the mean of the inference posterior q(Z|Y), exactly as at inference: the
        # restorer never sees X-derived Z. (Samples made the free dimensions, std ~1.7, pure noise
        # to R: Set5 x4 gained only 0.42 dB over bicubic after 2000 cpu-small steps.)
        with torch.no_grad():
            z_inf = self.restorer_z(m.posterior(lr, None), st.batch["factors"])
        sr = m.restore(lr, z_inf, st.tokens, st.pooled)
        # phi: posterior with X (randomly hidden), KL to the structured prior, entropy, structure, named factors.
        q = m.posterior(lr, hr)
        st.z = z = q.rsample()
        kl = m.prior.kl(q, st.ctx, n_samples=1, adjacency=m.prior_adjacency()).mean()
        entropy = q.entropy().mean()
        # KL(q || p) = E_q[log q - log p] already holds -H(q); entropy_weight adds an optional extra bonus.
        terms["causal"] = kl - c.entropy_weight * entropy
        terms["entropy"] = entropy.detach()
        terms["struct"] = structure_penalty(q.covariance_matrix)
        terms["aux"] = named_factor_nll(q, st.batch["factors"])
        # Degradation consistency: -log p(Y | X, Z) per pixel (theta: mechanism) with Z detached.
        nll = -m.mechanism.log_likelihood(lr, hr, z.detach(), per_pixel=True).mean()
        st.mean_lr = m.mechanism(hr, z.detach())
        consistency = nll + c.grad_gamma * sum((a - b).abs().mean()
                                               for a, b in zip(image_gradients(st.mean_lr), image_gradients(lr)))
        terms["rec"] = reconstruction_loss(sr, hr, c.grad_gamma, self.rec_norm) + c.w_consistency * consistency
        st.blocks["phi"] = w["causal"] * terms["causal"] + w["struct"] * terms["struct"] + c.w_aux * terms["aux"]
        st.theta = c.w_rec * terms["rec"]

    def _semantic_context(self, st: _Step) -> None:
        """L_sem's second term (theta: SCT): ||f_c(E(X)) - C||_1 with the HR context as a fixed target.

        E(X) is computed once per step and kept for the first term.
        """
        m, c = self.model, self.cfg
        if not m.use_sct:
            st.sem_ctx = st.zero
            return
        with torch.no_grad():
            st.tokens_hr = m.semantic(st.hr)
            pooled_hr = m.sct(st.tokens_hr)[1]
        # L1 to the HR context, plus InfoNCE against the other images' HR contexts: a constant C
        # satisfies the L1 part exactly (it did: spread 0.003 across Set14), never the InfoNCE part.
        st.sem_ctx = (st.pooled - pooled_hr).abs().mean() + c.ctx_contrast * info_nce(st.pooled, pooled_hr,
                                                                                        c.contrast_tau)

    def _counterfactual_terms(self, st: _Step) -> None:
        """Algorithm 1's counterfactuals and the terms that need them: L_cf, L_sem's first term, L_con."""
        m, c, w, hr, lr, z = self.model, self.cfg, st.w, st.hr, st.lr, st.z
        cf = generate_counterfactual(m, hr, lr, st.ctx, alpha0=c.cf_alpha0, beta=c.cf_beta,
                                     gamma=c.cf_gamma, delta=c.cf_delta, lam=c.cf_lambda)
        x_cf = cf.x_cf.detach()
        y_cf = self._counterfactual_lr(st.batch, x_cf, z.detach())
        # phi part of L_cf: ||f(X', Z) - Y_cf||^2 with Z ~ q, mechanism weights frozen.
        cf_phi = (frozen_call(m.mechanism, x_cf, z) - y_cf).pow(2).mean()
        # theta part: the mechanism and the restorer both learn from (X', Y_cf).
        # X' keeps X's semantics (that is what L_sem enforces), so Y_cf reuses Y's context C.
        with torch.no_grad():
            z_cf_inf = self.restorer_z(m.posterior(y_cf, None), st.batch["factors"])
        cf_theta = (m.mechanism(x_cf, z.detach()) - y_cf).pow(2).mean() + \
            reconstruction_loss(m.restore(y_cf, z_cf_inf, st.tokens, st.pooled), x_cf, c.grad_gamma, self.rec_norm)
        st.terms["cf"] = cf_phi + cf_theta
        st.blocks["phi"] = st.blocks["phi"] + w["cf"] * cf_phi
        st.theta = st.theta + w["cf"] * cf_theta
        # L_sem first term (psi, through alpha): ||E(X) - E(X')||^2 with E frozen.
        # On the first `sem_batch` samples only: it back-propagates through the frozen encoder.
        k = c.sem_batch or hr.shape[0]
        sem_cf = (m.semantic_features(cf.x_cf[:k]) - st.tokens_hr[:k].mean(1)).pow(2).mean() if m.use_sct \
            else st.zero
        # Perturbation reward up to a budget: without it psi's only loss through alpha (sem_cf) is
        # minimised by h_psi -> 0; without the budget h_psi saturates at 1 (deviation 19).
        st.psi = st.psi + w["sem"] * sem_cf - c.cf_div * cf.alpha.clamp(max=c.cf_budget).mean()
        st.terms["sem"] = sem_cf + c.sem_beta * st.sem_ctx
        self._contrastive_terms(st, cf, x_cf, y_cf)

    def _contrastive_terms(self, st: _Step, cf, x_cf: torch.Tensor, y_cf: torch.Tensor) -> None:
        """Eq. 16 with momentum keys (Alg. 2 line 20).

        The queries are the posterior's embedding of (Y, X) and its sample Z: phi learns from L_con
        through them (heads frozen), theta through the heads f, g (queries detached), so each block
        gets exactly its own gradient.
        """
        m, c, w, lr, z = self.model, self.cfg, st.w, st.lr, st.z
        keep = torch.zeros(lr.shape[0], dtype=torch.bool, device=lr.device)
        e_x = m.posterior.embed(lr, st.hr, drop_hr=keep)
        with torch.no_grad():
            e_cf = m.posterior.embed(y_cf, x_cf, drop_hr=keep)
            f_k, g_k = m.f_momentum(e_cf), m.g_momentum(cf.z_cf)
        st.terms["con"] = hierarchical_contrastive(m.f_head(e_x.detach()), f_k, m.g_head(z.detach()), g_k,
                                                   c.contrast_tau, c.contrast_lambda)
        con_phi = hierarchical_contrastive(frozen_call(m.f_head, e_x), f_k, frozen_call(m.g_head, z), g_k,
                                           c.contrast_tau, c.contrast_lambda)
        st.theta = st.theta + w["con"] * st.terms["con"]
        st.blocks["phi"] = st.blocks["phi"] + w["con"] * con_phi

    def _intervention_terms(self, st: _Step) -> None:
        """Interventions (Eq. 17, 20, 21): L_int (theta), the generator side (psi), the discriminator."""
        m, c, w, hr, lr = self.model, self.cfg, st.w, st.hr, st.lr
        types = torch.randint(0, m.cfg.z_dim, (lr.shape[0],), device=lr.device)
        z_d = st.z.detach()
        z_int = m.intervention(z_d, types, ctx=st.ctx)
        # theta: L_int = ||f(X, do(Z)) - f(X, Z)||^2 on the degradation mechanism.
        st.terms["int"] = (m.mechanism(hr, z_int.detach()) - st.mean_lr.detach()).pow(2).mean()
        st.theta = st.theta + w["int"] * st.terms["int"]
        # psi: Eq. 20 generator side, discriminator and mechanism frozen.
        logits_int = frozen_call(m.discriminator, z_int)
        gen_loss = F.binary_cross_entropy_with_logits(logits_int, torch.ones_like(logits_int))
        fit = (lr - frozen_call(m.mechanism, hr, z_int)).pow(2).mean()
        # The intervention must act on its target factor: fit alone is minimised by the identity.
        moved = (z_int - z_d).gather(1, types[:, None]).abs().squeeze(1)
        effect = F.relu(c.int_margin - moved).mean()
        psi_int = (c.w_adv * gen_loss + c.int_lambda1 * fit
                   + c.int_lambda2 * m.intervention.omega(z_d, types, ctx=st.ctx)
                   + c.int_lambda3 * m.intervention.strength_penalty() + c.int_effect * effect)
        st.terms["int_psi"] = psi_int
        st.psi = st.psi + w["int"] * psi_int
        # disc: Eq. 20's max over D on detached latents.
        d_loss, _ = adversarial_losses(m.discriminator, z_d, z_int.detach())
        st.terms["disc"] = d_loss
        st.blocks["disc"] = c.w_adv * d_loss

    def restorer_z(self, q: MultivariateNormal, factors: torch.Tensor) -> torch.Tensor:
        """Z for R: the posterior mean, its named dims replaced by the true factors with prob. p_oracle.

        The true factors are jittered by the posterior's own standard deviation, so R learns to
        obey Z at the precision blind inference gives it; unknown factors (NaN) keep the mean.
        """
        z = q.mean.clone()
        known = torch.isfinite(factors).all(dim=1)
        pick = known & (torch.rand(z.shape[0], device=z.device) < self.cfg.p_oracle)
        if pick.any():
            std = q.stddev[:, :N_NAMED]
            told = normalise(torch.nan_to_num(factors)) + std * torch.randn_like(std)
            z[:, :N_NAMED] = torch.where(pick[:, None], told, z[:, :N_NAMED])
        return z

    def _counterfactual_lr(self, batch: dict, x_cf: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Y_cf: the real pipeline on X' with the same parameters and noise seed; the mechanism when unknown."""
        params = batch.get("params")
        if params and all(p is not None for p in params):
            return degrade_batch(x_cf, [DegradationParams.from_dict(p) if isinstance(p, dict) else p for p in params])
        with torch.no_grad():
            return self.model.mechanism(x_cf, z).clamp(0, 1)
