"""Fast Q̂^β(s, a) (eq. 13) and ∇_a Q̂ for a frozen Q ensemble: stacked members, hand-derived backward.

Inside J the Q-networks are fixed (target nets, original_code.md §1.5), so the only gradient J needs from
them is ∇_a Q̂, never a weight gradient. This module computes it without autograd:

* the members' weights are stacked ([M, out, in]) so both networks run as one batched product;
* Q̂ is a scalar per (s, a) row, so ∇_a Q̂ is computed eagerly in the same pass as the value (one
  forward and one input-gradient backward per row, whatever the later use of J);
* the backward is written out: ReLU masks (architecture A); ELU, LayerNorm and highway gates
  (architecture B); only the action columns of the first layer;
* on the CPU, rows are processed in chunks (~512) so a chunk's activations stay in cache between
  its forward and its backward, with the masks applied in place; on a GPU all rows run as one chunk.

`FusedValue` is a drop-in `ValueFn`: `FusedValue(ensemble, β)(obs, action)` equals
`pessimistic(ensemble(obs, action), β)` and is differentiable in the action through a custom
autograd function whose backward multiplies the upstream gradient by the saved ∇_a Q̂. It computes
in the ensemble's own dtype: float32 in training, float64 when a test runs the whole agent in double
precision to check the algebra.
Tests: tests/test_fast_paths.py (against the autograd reference).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iapo.graphs import generation, step_cache
from iapo.objective import ActionGradValue
from iapo.values.q_ensemble import HighwayBlock, QEnsemble, pessimistic, pessimistic_weights

CHUNK_ELEMENTS = 2**18
"""Activation elements per layer and chunk (all members): rows = CHUNK_ELEMENTS / (M · width), so
architecture A runs 512 rows ([2, 512, 256] fp32 = 1 MB, in a 2 MB L2) and B (width 512, more
saved tensors per layer) 128 rows (B is halved again for its highway blocks). Measured best on
this machine's 2 MB L2 among 64-2560 rows. CPU only: on a GPU, rows run as one chunk."""
LN_EPS = 1e-5  # nn.LayerNorm's default, as in QNetwork


# ------------------------------------------------------------------ stacked weights
@dataclass(frozen=True)
class DenseLayer:
    """Linear → (LayerNorm) → nonlinearity of every member, weights stacked along axis 0."""

    weight: Tensor            # [M, out, in]
    weight_t: Tensor          # [M, in, out], a transposed view of `weight` (forward products)
    bias: Tensor              # [M, 1, out]
    ln_weight: Tensor | None  # [M, 1, out] LayerNorm affine γ, or None without LayerNorm
    ln_bias: Tensor | None    # [M, 1, out] LayerNorm affine β
    nonlinearity: str


@dataclass(frozen=True)
class HighwayLayer:
    """h' = g ⊙ h + (1 − g) ⊙ f(h), g = sigmoid(W_g h + b_g), stacked over members (Table 4)."""

    gate_weight: Tensor  # [M, out, out]
    gate_bias: Tensor    # [M, 1, out]
    transform: DenseLayer


@dataclass(frozen=True)
class StackedQ:
    """A snapshot of a Q ensemble's weights, stacked over its M members, in one dtype."""

    first: DenseLayer
    first_action_weight: Tensor  # [M, out, n]: the first layer's action columns (for ∇_a)
    hidden: tuple[DenseLayer | HighwayLayer, ...]
    head_weight: Tensor          # [M, 1, H]
    head_bias: Tensor            # [M, 1, 1]
    obs_dim: int

    memo: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_members(self) -> int:
        return self.head_weight.shape[0]

    def head_terms(self, beta: float) -> tuple[Tensor, Tensor]:
        """(w_i / 2, ∓(β/2) w_i) of the output layer [M, 1, H], for two members (see `_head_grad`)."""
        if ("head", beta) not in self.memo:
            with torch.inference_mode(False):  # normal tensors, even when first asked while acting
                w = self.head_weight
                self.memo["head", beta] = (w * 0.5, w * _pair(w, -beta / 2.0, beta / 2.0))
        return self.memo["head", beta]

    def head_difference(self) -> tuple[Tensor, Tensor]:
        """(±w_i [2, 1, H], b_1 − b_2 []) of two members' output layers, so that
        Q1 − Q2 = Σ_i Σ_j h_ij (±w_ij) + (b_1 − b_2)."""
        if "difference" not in self.memo:
            with torch.inference_mode(False):
                w, b = self.head_weight, self.head_bias.view(-1)
                self.memo["difference"] = (w * _pair(w, 1.0, -1.0), b[0] - b[1])
        return self.memo["difference"]


def _pair(like: Tensor, first: float, second: float) -> Tensor:
    """[first, second] as a [2, 1, 1] tensor like `like`, written by two fills: no host→device copy
    (which a CUDA graph cannot capture), the same numbers as `torch.tensor([first, second])`."""
    out = like.new_empty(2, 1, 1)
    out[0].fill_(first)
    out[1].fill_(second)
    return out


def default_chunk_rows(net: StackedQ, rows: int) -> int:
    """Rows per chunk for `net` on the CPU (see CHUNK_ELEMENTS); elsewhere all `rows`: a GPU has no
    2 MB cache to fit, and every chunk would cost its own kernel launches."""
    if net.head_weight.device.type != "cpu":
        return rows
    width = net.head_weight.shape[-1]
    per_chunk = CHUNK_ELEMENTS // (net.n_members * width)
    return per_chunk // 2 if any(isinstance(layer, HighwayLayer) for layer in net.hidden) else per_chunk


def supports(ensemble: nn.Module) -> bool:
    """Whether `ensemble` is a plain `QEnsemble` whose architecture the hand-derived backward covers."""
    if type(ensemble) is not QEnsemble:
        return False
    for net in ensemble.members:
        for block in net.trunk:
            layer = block.transform if isinstance(block, HighwayBlock) else block
            if not isinstance(layer, nn.Sequential) or len(layer) not in (2, 3):
                return False
            nonlinearity = layer[-1]
            if not isinstance(nonlinearity, nn.ReLU | nn.ELU) or (
                isinstance(nonlinearity, nn.ELU) and nonlinearity.alpha != 1.0
            ):
                return False
            if len(layer) == 3 and not (isinstance(layer[1], nn.LayerNorm) and layer[1].eps == LN_EPS):
                return False
    return True


def _stack(tensors: list[Tensor], dtype: torch.dtype) -> Tensor:
    return torch.stack([t.detach() for t in tensors]).to(dtype).contiguous()


def _dense(layers: list[nn.Sequential], dtype: torch.dtype) -> DenseLayer:
    lin = [seq[0] for seq in layers]
    ln = [seq[1] for seq in layers] if len(layers[0]) == 3 else None
    name = "relu" if isinstance(layers[0][-1], nn.ReLU) else "elu"
    weight = _stack([m.weight for m in lin], dtype)
    return DenseLayer(
        weight=weight, weight_t=weight.transpose(1, 2),
        bias=_stack([m.bias.unsqueeze(0) for m in lin], dtype),
        ln_weight=None if ln is None else _stack([m.weight.unsqueeze(0) for m in ln], dtype),
        ln_bias=None if ln is None else _stack([m.bias.unsqueeze(0) for m in ln], dtype),
        nonlinearity=name,
    )


def stack_ensemble(ensemble: QEnsemble, dtype: torch.dtype = torch.float32) -> StackedQ:
    """Copy the members' weights into stacked tensors (a snapshot: later weight updates need a new one)."""
    nets = list(ensemble.members)
    first = _dense([net.trunk[0] for net in nets], dtype)
    obs_dim = ensemble.obs_dim
    hidden: list[DenseLayer | HighwayLayer] = []
    for i in range(1, len(nets[0].trunk)):
        blocks = [net.trunk[i] for net in nets]
        if isinstance(blocks[0], HighwayBlock):
            hidden.append(HighwayLayer(
                gate_weight=_stack([b.gate.weight for b in blocks], dtype),
                gate_bias=_stack([b.gate.bias.unsqueeze(0) for b in blocks], dtype),
                transform=_dense([b.transform for b in blocks], dtype),
            ))
        else:
            hidden.append(_dense(blocks, dtype))
    return StackedQ(
        first=first,
        first_action_weight=first.weight[:, :, obs_dim:].contiguous(),
        hidden=tuple(hidden),
        head_weight=_stack([net.head.weight for net in nets], dtype),
        head_bias=_stack([net.head.bias.view(1, 1) for net in nets], dtype),
        obs_dim=obs_dim,
    )


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def stacked(ensemble: QEnsemble, dtype: torch.dtype = torch.float32) -> StackedQ:
    """`stack_ensemble`, cached until any member weight changes (in-place updates bump versions; a
    CUDA graph replay, which bumps none, counts as a change: `iapo.graphs.generation`); under
    `iapo.graphs.step_snapshots` once per step and kept no longer (a step captured as a CUDA graph
    then re-stacks the weights once on every replay)."""
    scope = step_cache()
    if scope is not None:
        key = (id(ensemble), dtype)
        if key not in scope:
            scope[key] = _snapshot(ensemble, dtype)
        return scope[key]
    entry = _CACHE.setdefault(ensemble, {})
    params = entry.get("params") or entry.setdefault("params", list(ensemble.parameters()))
    key = (dtype, generation(), tuple(p._version for p in params), tuple(p.data_ptr() for p in params))
    if entry.get("key") != key:
        entry["value"] = _snapshot(ensemble, dtype)
        entry["key"] = key
    return entry["value"]


def _snapshot(ensemble: QEnsemble, dtype: torch.dtype) -> StackedQ:
    if not supports(ensemble):
        raise ValueError("FusedValue needs a plain QEnsemble with ReLU/ELU (LayerNorm, highway) layers")
    with torch.inference_mode(False), torch.no_grad():  # normal tensors, even when acting
        return stack_ensemble(ensemble, dtype)


# ------------------------------------------------------------------ forward and backward of one chunk
@dataclass
class _DenseSaved:
    h: Tensor                   # the layer's output (its nonlinearity's derivative is read from it)
    z: Tensor | None = None     # LayerNorm's input, its mean and 1 / std (for its backward)
    mean: Tensor | None = None
    rstd: Tensor | None = None


def _dense_forward(
    layer: DenseLayer, x: Tensor | None, z: Tensor | None = None,
) -> tuple[Tensor, _DenseSaved]:
    """h = φ(LN(z)), z = x Wᵀ + b, for every member at once; x is [M, r, in] (may be a broadcast
    view), or the pre-activation z comes precomputed."""
    if z is None:
        z = torch.baddbmm(layer.bias, x, layer.weight_t)
    saved = _DenseSaved(h=z)
    if layer.ln_weight is not None:
        x_hat, mean, rstd = torch.native_layer_norm(z, [z.shape[-1]], None, None, LN_EPS)
        saved.z, saved.mean, saved.rstd = z, mean, rstd
        z = torch.addcmul(layer.ln_bias, x_hat, layer.ln_weight)
    if layer.nonlinearity == "relu":
        saved.h = z.relu_()
    else:
        saved.h = F.elu(z)
    return saved.h, saved


def _dense_backward_pre(layer: DenseLayer, dh: Tensor, saved: _DenseSaved) -> Tensor:
    """Gradient at the Linear output z = x Wᵀ + b from the gradient at h (in place on dh)."""
    # autograd's own kernels, applied in place: the ReLU mask h > 0; ELU'(y) = 1 for y > 0 and
    # exp(y) = h + 1 for y ≤ 0, read from the output h
    if layer.nonlinearity == "relu":
        torch.ops.aten.threshold_backward.grad_input(dh, saved.h, 0.0, grad_input=dh)
    else:
        torch.ops.aten.elu_backward.grad_input(dh, 1.0, 1, 1, True, saved.h, grad_input=dh)
    if layer.ln_weight is None:
        return dh
    # LayerNorm: the affine γ per member here, the normalisation's backward by its own kernel:
    # dz = rstd (dx̂ − mean(dx̂) − x̂ mean(dx̂ ⊙ x̂)), dx̂ = dy ⊙ γ
    dx_hat = dh.mul_(layer.ln_weight)
    return torch.ops.aten.native_layer_norm_backward(
        dx_hat, saved.z, [dh.shape[-1]], saved.mean, saved.rstd, None, None, [True, False, False])[0]


def _highway_forward(layer: HighwayLayer, h: Tensor) -> tuple[Tensor, tuple]:
    g = torch.baddbmm(layer.gate_bias, h, layer.gate_weight.mT).sigmoid_()
    t, saved_t = _dense_forward(layer.transform, h)
    return g * h + (1.0 - g) * t, (h, g, t, saved_t)


def _highway_backward(layer: HighwayLayer, dh_out: Tensor, saved: tuple) -> Tensor:
    """∂/∂h of g ⊙ h + (1 − g) ⊙ f(h) with g = sigmoid(W_g h + b_g): through the gate (g − g²), the
    transform f and the identity path."""
    h, g, t, saved_t = saved
    one_minus_g = 1.0 - g
    dgate = (h - t).mul_(dh_out).mul_(g).mul_(one_minus_g)   # through sigmoid: g (1 − g)
    dt = _dense_backward_pre(layer.transform, dh_out * one_minus_g, saved_t)
    dh = dh_out.mul_(g)
    dh.baddbmm_(dgate, layer.gate_weight)
    return dh.baddbmm_(dt, layer.transform.weight)


def _chunk(
    net: StackedQ, x: Tensor | None, head_grad: Callable[[Tensor], Tensor] | None, exact_head: bool = True,
    first_z: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Q_i [M, r] and ∇_a Q̂ [r, n] for r input rows x = [s, a] of shape [r, S + n].

    `head_grad` maps the Q_i to ∂Q̂/∂h_L [M, r, H], the gradient at the last hidden layer (eq. 13
    through the output layer); no gradient if None. `exact_head` runs the output layer per member as
    nn.Linear does (bit-identical Q_i); else as one batched product. `first_z` replaces x by the
    first layer's pre-activation [M, r, H], computed by the caller.
    """
    x = None if x is None else x.expand(net.n_members, *x.shape)
    h, saved_first = _dense_forward(net.first, x, first_z)
    saved = []
    for layer in net.hidden:
        if isinstance(layer, HighwayLayer):
            h, s = _highway_forward(layer, h)
        else:
            h, s = _dense_forward(layer, h)
        saved.append(s)
    if exact_head:  # per member, as nn.Linear computes it (addmm): Q_i bit-identical to the reference
        qs = torch.stack([torch.addmm(b[0], h_i, w.t()).squeeze(-1)
                          for h_i, w, b in zip(h, net.head_weight, net.head_bias, strict=True)])
    else:
        qs = torch.baddbmm(net.head_bias, h, net.head_weight.mT).squeeze(-1)  # [M, r]
    if head_grad is None:
        return qs, None
    dh = head_grad(qs)
    for layer, s in zip(reversed(net.hidden), reversed(saved), strict=True):
        if isinstance(layer, HighwayLayer):
            dh = _highway_backward(layer, dh, s)
        else:
            dh = torch.bmm(_dense_backward_pre(layer, dh, s), layer.weight)
    dz = _dense_backward_pre(net.first, dh, saved_first)
    return qs, torch.bmm(dz, net.first_action_weight).sum(0)


# ------------------------------------------------------------------ the value function
class FusedValue(ActionGradValue):
    """Q̂^β(s, a) of eq. 13 from a frozen `QEnsemble`, with ∇_a Q̂ by hand (see the module docstring).

    Same interface as the reference `lambda s, a: pessimistic(ensemble(s, a), β, std)`: states
    [..., S] (may be a broadcast view) and actions [..., n] → Q̂ [...]. The ensemble's weights are
    read when called (snapshot cached until they change); no gradient reaches them. If the states
    themselves need a gradient (e.g. model-predicted states), the call falls back to autograd.
    """

    def __init__(
        self, ensemble: QEnsemble, beta: float, std: str = "population", chunk_rows: int | None = None,
    ) -> None:
        self.ensemble, self.beta, self.std = ensemble, beta, std
        self.out_dtype = self.dtype = next(ensemble.parameters()).dtype
        self.chunk_rows = chunk_rows

    def __call__(self, obs: Tensor, action: Tensor) -> Tensor:
        if obs.requires_grad:
            return pessimistic(self.ensemble(obs, action), self.beta, self.std)
        if torch.is_grad_enabled() and action.requires_grad:
            return _ValueWithActionGrad.apply(action, obs, self)
        return self.value_and_action_grad(obs, action, need_grad=False)[0]

    def value_and_action_grad(
        self, obs: Tensor, action: Tensor, need_grad: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Q̂(s, a) [...] and ∇_a Q̂(s, a) [..., n] (None unless `need_grad`), without autograd."""
        net = stacked(self.ensemble, self.dtype)
        lead = action.shape[:-1]
        x = torch.cat([obs.expand(*lead, obs.shape[-1]), action], -1)
        x = self._cast(x.reshape(-1, x.shape[-1]))
        rows = x.shape[0]
        qs = x.new_empty(net.n_members, rows)
        grad = x.new_empty(rows, action.shape[-1]) if need_grad else None

        def head_grad(q: Tensor) -> Tensor:
            return self._head_grad(net, q)

        chunk = self.chunk_rows or default_chunk_rows(net, rows)
        with torch.no_grad():
            for start in range(0, rows, chunk):
                stop = min(start + chunk, rows)
                qs[:, start:stop], g = _chunk(net, x[start:stop], head_grad if need_grad else None)
                if grad is not None:
                    grad[start:stop] = g
            q = pessimistic(_to(qs, self.out_dtype), self.beta, self.std)
        return q.view(lead), None if grad is None else _to(grad, self.out_dtype).view(action.shape)

    def action_grad(self) -> PlainActionGrad | ChunkActionGrad:
        """∇_a Q̂ at fixed states, for acting: `states(obs, N)` once, then `(actions, states)` per call.

        The states' part of the first layer, s W_sᵀ + b, is computed once for all calls (the same
        products, summed in another order: equal to `value_and_action_grad` up to rounding); rows
        run as one chunk and Q̂ itself is not computed. Two members with population σ and plain
        layers (architecture A: no LayerNorm, no highway) get the lean `PlainActionGrad` (cached
        with the stacked weights); the rest the general `ChunkActionGrad`.
        """
        net = stacked(self.ensemble, self.dtype)
        if self.std == "population" and net.n_members == 2 and _plain(net):
            key = ("plain", self.beta)
            if key not in net.memo:
                with torch.inference_mode(False):  # normal tensors, even when first asked while acting
                    net.memo[key] = _plain_action_grad(net, self.beta, self.out_dtype)
            return net.memo[key]
        return ChunkActionGrad(self, net)

    def action_grad_fn(self, obs: Tensor, n_samples: int) -> Callable[[Tensor], Tensor]:
        """a ↦ ∇_a Q̂(s, a) for N samples [N, B, n] at the fixed states s [B, S] (`action_grad`)."""
        grad = self.action_grad()
        states = grad.states(obs, n_samples)
        return lambda action: grad(action, states)

    def _cast(self, x: Tensor) -> Tensor:
        return x if x.dtype == self.dtype else x.to(self.dtype)

    def _head_grad(self, net: StackedQ, qs: Tensor) -> Tensor:
        """∂Q̂/∂h_L = (∂Q̂/∂Q_i) w_i for a chunk's rows [M, r, H], from the Q_i [M, r] (eq. 13).

        Two members, population σ: ∂Q̂/∂Q_1,2 = 1/2 ∓ (β/2) sign(Q1 − Q2), so the gradient is
        w_i/2 ∓ sign(Q1 − Q2) (β/2) w_i, one multiply-add. Otherwise from `pessimistic_weights`.
        """
        if self.std == "population" and net.n_members == 2:
            half, signed = net.head_terms(self.beta)
            return torch.addcmul(half, (qs[0] - qs[1]).sign_().unsqueeze(-1), signed)
        c = pessimistic_weights(_to(qs, self.out_dtype), self.beta, self.std)
        return self._cast(c).unsqueeze(-1) * net.head_weight


def _plain(net: StackedQ) -> bool:
    """Whether every layer is Linear → nonlinearity (no LayerNorm, no highway gate): architecture A."""
    layers = (net.first, *net.hidden)
    return all(isinstance(layer, DenseLayer) and layer.ln_weight is None for layer in layers)


@dataclass(frozen=True)
class PlainActionGrad:
    """∇_a Q̂(s, a) at fixed states for two members, population σ and plain layers (architecture A).

    The same products as `_chunk` (the first layer from the states' part, hidden layers, input
    gradients through the ReLU/ELU masks), in as few operations as possible: at batch 1 and N = 10
    acting is dominated by per-operation overhead. The head is replaced by the one number its
    gradient needs per row, the sign of Q1 − Q2 (eq. 13: ∂Q̂/∂Q_1,2 = 1/2 ∓ (β/2) sign(Q1 − Q2)),
    computed as Σ_j (h_1j w_1j − h_2j w_2j) + (b_1 − b_2): the same sum as Q1 − Q2 in another order
    (a different sign only where |Q1 − Q2| is at rounding level).
    """

    obs_weight_t: Tensor                            # [2, S, H] the first layer's state columns, transposed
    first_bias: Tensor                              # [2, 1, H]
    w_action_t: Tensor                              # [2, n, H] its action columns, transposed
    w_action: Tensor                                # [2, H, n]
    hidden: tuple[tuple[Tensor, Tensor, Tensor], ...]  # (bias [2, 1, H], Wᵀ, W) per hidden layer
    relu: tuple[bool, ...]                          # per layer, first included: ReLU (else ELU)
    w_diff: Tensor                                  # [2, 1, H] ±w_i of the output layers
    b_diff: Tensor                                  # [] b_1 − b_2
    half: Tensor                                    # [2, 1, H] w_i / 2
    signed: Tensor                                  # [2, 1, H] ∓(β/2) w_i
    out_dtype: torch.dtype                          # the ensemble's dtype: the gradient's

    def states(self, obs: Tensor, n_samples: int) -> Tensor:
        """s W_sᵀ + b [2, R, H] for states [B, S], rows sample-major (R = N B; [2, 1, H] if B = 1)."""
        s = obs if obs.dtype == self.w_action.dtype else obs.to(self.w_action.dtype)
        z = torch.baddbmm(self.first_bias, s.expand(self.w_action.shape[0], *s.shape), self.obs_weight_t)
        return z if obs.shape[0] == 1 else z.repeat(1, n_samples, 1)

    def __call__(self, action: Tensor, states: Tensor) -> Tensor:
        """∇_a Q̂ [N, B, n] (the ensemble's dtype) for actions [N, B, n] at `states` (from `states`)."""
        a = action if action.dtype == self.w_action.dtype else action.to(self.w_action.dtype)
        m, n = self.w_action.shape[0], self.w_action.shape[-1]
        h = _activate(torch.baddbmm(states, a.reshape(1, -1, n).expand(m, -1, -1), self.w_action_t),
                      self.relu[0])
        outputs = [h]
        for (bias, weight_t, _), relu in zip(self.hidden, self.relu[1:], strict=True):
            h = _activate(torch.baddbmm(bias, h, weight_t), relu)
            outputs.append(h)
        sign = torch.mul(h, self.w_diff).sum((0, 2)).add_(self.b_diff).sign_()    # sign(Q1 − Q2) [R]
        dh = torch.addcmul(self.half, sign.view(1, -1, 1), self.signed)          # ∂Q̂/∂h_L [2, R, H]
        for (_, _, weight), relu, h_out in zip(
            reversed(self.hidden), reversed(self.relu[1:]), reversed(outputs[1:]), strict=True,
        ):
            dh = torch.bmm(_mask(dh, h_out, relu), weight)
        grad = torch.bmm(_mask(dh, outputs[0], self.relu[0]), self.w_action).sum(0)
        return _to(grad, self.out_dtype).view(action.shape)


def _plain_action_grad(net: StackedQ, beta: float, out_dtype: torch.dtype) -> PlainActionGrad:
    half, signed = net.head_terms(beta)
    w_diff, b_diff = net.head_difference()
    return PlainActionGrad(
        obs_weight_t=net.first.weight_t[:, : net.obs_dim], first_bias=net.first.bias,
        w_action_t=net.first_action_weight.mT, w_action=net.first_action_weight,
        hidden=tuple((layer.bias, layer.weight_t, layer.weight) for layer in net.hidden),
        relu=tuple(layer.nonlinearity == "relu" for layer in (net.first, *net.hidden)),
        w_diff=w_diff, b_diff=b_diff, half=half, signed=signed, out_dtype=out_dtype,
    )


class ChunkActionGrad:
    """`PlainActionGrad`'s interface for any supported ensemble and pessimism: one `_chunk` per call."""

    def __init__(self, value: FusedValue, net: StackedQ) -> None:
        self.value, self.net = value, net

    def states(self, obs: Tensor, n_samples: int) -> Tensor:
        first, m = self.net.first, self.net.n_members
        s = self.value._cast(obs).expand(m, *obs.shape)
        z = torch.baddbmm(first.bias, s, first.weight_t[:, : self.net.obs_dim])
        return z if obs.shape[0] == 1 else z.repeat(1, n_samples, 1)

    def __call__(self, action: Tensor, states: Tensor) -> Tensor:
        net, m = self.net, self.net.n_members
        a = self.value._cast(action).reshape(1, -1, action.shape[-1]).expand(m, -1, -1)
        with torch.no_grad():
            _, grad = _chunk(net, None, lambda qs: self.value._head_grad(net, qs), exact_head=False,
                             first_z=torch.baddbmm(states, a, net.first_action_weight.mT))
        return _to(grad, self.value.out_dtype).view(action.shape)


def _activate(z: Tensor, relu: bool) -> Tensor:
    """The layer's nonlinearity on its pre-activation (ReLU in place)."""
    return z.relu_() if relu else F.elu(z)


def _mask(dh: Tensor, h: Tensor, relu: bool) -> Tensor:
    """Gradient through the nonlinearity from its output h, in place on dh (as `_dense_backward_pre`)."""
    if relu:
        return torch.ops.aten.threshold_backward.grad_input(dh, h, 0.0, grad_input=dh)
    return torch.ops.aten.elu_backward.grad_input(dh, 1.0, 1, 1, True, h, grad_input=dh)


def _to(x: Tensor, dtype: torch.dtype) -> Tensor:
    return x if x.dtype == dtype else x.to(dtype)


class _ValueWithActionGrad(torch.autograd.Function):
    """Q̂(s, a) as a differentiable function of a: the backward is dL/dQ̂ ⊙ ∇_a Q̂ (saved)."""

    @staticmethod
    def forward(ctx, action: Tensor, obs: Tensor, value: FusedValue) -> Tensor:  # type: ignore[override]
        q, grad = value.value_and_action_grad(obs, action, need_grad=True)
        ctx.save_for_backward(grad)
        return q

    @staticmethod
    def backward(ctx, grad_q: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad_q.unsqueeze(-1) * grad, None, None
