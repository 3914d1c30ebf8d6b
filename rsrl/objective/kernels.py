"""Fused Triton kernels for the reward-shaped loss (imported only on the Triton path).

`_row_sums_kernel`, one program per row of logits:
  1. streams the row in chunks: online max, sum of exp over all tokens and over the
     others (tokens but x), sum of exp * (z - max) over the others, and, when K matters,
     the maximum of every group of G consecutive logits (to scratch, as ordered int keys);
  2. finds the k-th largest logit without sorting. At least k logits are >= the k-th
     largest group maximum L, so the threshold is >= L, and every logit >= L lies in a
     group whose maximum is >= L (about k groups of G logits). So: select L among the
     group maxima, list those groups, select the k-th largest among their logits. Both
     selections are `_kth_key`, a multi-way bisection on the float bit patterns;
  3. sums pi and pi log pi over K's others, reading only the listed groups.
`_grad_kernel` then writes dL/dz_j = pi_j (W - c_j) (g_x at column x) in one pass, in
backward, so nothing of size [N, V] is kept between forward and backward.

Under TRITON_INTERPRET=1 (set before triton is first imported) the kernels run on CPU
tensors through the interpreter; the tests use that at small sizes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from .shaping import RowSums, RowTerms, Shaping

GRAD_IN_FORWARD = False

MAX_BLOCK = 4096  # logits per chunk of the streaming passes
GROUP = 32  # logits per group maximum: ~k * GROUP logits reach the second selection
CUTS = 16  # cut points per bisection pass
KEY_TILE = 256  # group maxima per tile in the first selection
GROUP_TILE = 16  # groups per tile in the second selection
N_SUMS = 8  # z_max, log_z, z_x, u, plogp_rest, s_top, plogp_top, thr

MAX_PASSES = tl.constexpr(40)
I32_MIN = tl.constexpr(-(2**31))
I32_MAX = tl.constexpr(2**31 - 1)


def check_device(device: torch.device) -> None:
    if device.type != "cuda" and not INTERPRETED:
        raise ValueError(
            f"impl='triton' on {device.type} tensors needs the Triton interpreter, but "
            "rsrl.objective.kernels was imported without TRITON_INTERPRET=1: set it before "
            "the first Triton call, or use impl='reference'"
        )


@triton.jit
def _key(z):
    """Int32 key ordered like the float32 z (-0.0 folded onto +0.0, as they compare equal)."""
    z = tl.where(z == 0.0, 0.0, z)
    bits = z.to(tl.int32, bitcast=True)
    return tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


@triton.jit
def _finite(d):
    """d with -inf raised to the lowest float, so that 0 * d is 0 (padding, the first chunk)."""
    return tl.maximum(d, -3.4028234e38)


@triton.jit
def _value(key):
    bits = tl.where(key < 0, key ^ 0x7FFFFFFF, key)
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _group_tile(row_ptr, groups_ptr, start, n_groups, V, G: tl.constexpr, TILE: tl.constexpr):
    """Logits of listed groups [start, start + TILE) as [TILE, G], with their mask and columns."""
    item = start + tl.arange(0, TILE)
    live = item < n_groups
    group = tl.load(groups_ptr + item, mask=live, other=0)
    col = group[:, None] * G + tl.arange(0, G)[None, :]
    ok = live[:, None] & (col < V)
    z = tl.load(row_ptr + col, mask=ok, other=float("-inf")).to(tl.float32)
    return z, ok, col


@triton.jit
def _tile_keys(
    row_ptr,
    items_ptr,
    start,
    n_items,
    V,
    OF_GROUPS: tl.constexpr,
    G: tl.constexpr,
    TILE: tl.constexpr,
):
    """Keys of items [start, start + TILE): stored keys, or the logits of listed groups."""
    if OF_GROUPS:
        z, ok, col = _group_tile(row_ptr, items_ptr, start, n_items, V, G, TILE)
        return tl.reshape(tl.where(ok, _key(z), I32_MIN), [TILE * G])
    else:
        item = start + tl.arange(0, TILE)
        return tl.load(items_ptr + item, mask=item < n_items, other=I32_MIN)


@triton.jit
def _kth_key(
    row_ptr,
    items_ptr,
    n_items,
    kk,
    lo,
    hi,
    V,
    OF_GROUPS: tl.constexpr,
    G: tl.constexpr,
    TILE: tl.constexpr,
    NC: tl.constexpr,
):
    """Largest key t with #{keys >= t} >= kk, given #{keys >= lo} >= kk > #{keys >= hi}.

    A pass counts the keys at NC cut points spread from lo to hi and notes, per cut, the
    least key at or above it and the greatest below it. The answer lies between the last
    cut reached by kk keys and the next; the bracket shrinks to the keys present there.
    It ends when exactly kk keys reach the cut (the answer is the least of them) or one
    distinct key is left. Each pass divides the 2^32 keys by NC - 1 at least, so valid
    input ends within 9 passes for NC = 16; the cap only guards against NaN logits.
    """
    step = tl.arange(0, NC)
    answer = lo
    lo = lo.to(tl.int64)
    hi = hi.to(tl.int64)
    searching = lo < hi
    passes = 0
    while searching & (passes < MAX_PASSES):
        passes += 1
        cut = (lo + (hi - lo) * step.to(tl.int64) // (NC - 1)).to(tl.int32)
        count = tl.zeros([NC], dtype=tl.int32)
        least_above = tl.full([NC], I32_MAX, tl.int32)
        most_below = tl.full([NC], I32_MIN, tl.int32)
        for start in range(0, n_items, TILE):
            key = _tile_keys(row_ptr, items_ptr, start, n_items, V, OF_GROUPS, G, TILE)[:, None]
            above = key >= cut[None, :]
            count += tl.sum(above.to(tl.int32), axis=0)
            least_above = tl.minimum(least_above, tl.min(tl.where(above, key, I32_MAX), axis=0))
            most_below = tl.maximum(most_below, tl.max(tl.where(above, I32_MIN, key), axis=0))
        j = tl.sum((count >= kk).to(tl.int32), axis=0) - 1
        count_j = tl.sum(tl.where(step == j, count, 0), axis=0)
        low = tl.sum(tl.where(step == j, least_above, 0), axis=0)
        high = tl.sum(tl.where(step == j + 1, most_below, 0), axis=0)
        answer = low
        searching = (count_j != kk) & (low != high)
        lo = low.to(tl.int64)
        hi = high.to(tl.int64) + 1
    return answer


@triton.jit
def _row_sums_kernel(
    z_ptr,
    z_stride,
    x_ptr,
    out_ptr,
    keys_ptr,
    groups_ptr,
    N,
    V,
    k,
    n_groups,
    NEED_TOP: tl.constexpr,
    ALL_TOP: tl.constexpr,
    SELECT: tl.constexpr,
    BLOCK: tl.constexpr,
    G: tl.constexpr,
    KEY_TILE: tl.constexpr,
    GROUP_TILE: tl.constexpr,
    NC: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    row_ptr = z_ptr + row * z_stride
    keys_row = keys_ptr + row * n_groups
    groups_row = groups_ptr + row * n_groups
    x = tl.load(x_ptr + row)

    # 1. One streaming pass; exp sums are relative to the running max m.
    m = float("-inf")
    z_min = float("inf")
    sum_all = 0.0
    sum_rest = 0.0
    a_rest = 0.0  # sum over the others of e^(z - m) (z - m)
    for start in range(0, V, BLOCK):
        col = start + tl.arange(0, BLOCK)
        live = col < V
        z = tl.load(row_ptr + col, mask=live, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(z, axis=0))
        rescale = tl.exp(m - m_new)
        e = tl.exp(z - m_new)
        e_rest = tl.where(col == x, 0.0, e)
        a_rest = rescale * (a_rest + _finite(m - m_new) * sum_rest) + tl.sum(
            e_rest * _finite(z - m_new), axis=0
        )
        sum_all = sum_all * rescale + tl.sum(e, axis=0)
        sum_rest = sum_rest * rescale + tl.sum(e_rest, axis=0)
        m = m_new
        if SELECT:
            z_min = tl.minimum(z_min, tl.min(tl.where(live, z, float("inf")), axis=0))
            group = start // G + tl.arange(0, BLOCK // G)
            group_max = tl.max(tl.reshape(z, [BLOCK // G, G]), axis=1)
            tl.store(keys_row + group, _key(group_max), mask=group < n_groups)
    log_z = tl.log(sum_all)
    u = sum_rest / sum_all
    plogp_rest = a_rest / sum_all - log_z * u
    z_x = tl.load(row_ptr + x, mask=(x >= 0) & (x < V), other=float("nan")).to(tl.float32)

    # 2-3. K: the threshold and the sums over its others.
    s_top = 0.0
    plogp_top = 0.0
    thr = float("inf")
    if NEED_TOP:
        if ALL_TOP:
            s_top = u
            plogp_top = plogp_rest
            thr = float("-inf")
        else:
            tl.debug_barrier()  # group keys were stored by other threads of this program
            top = _key(m) + 1
            cut = _key(z_min)
            if k <= n_groups:
                cut = _kth_key(row_ptr, keys_row, n_groups, k, cut, top, V, False, G, KEY_TILE, NC)
            n_sel = _list_groups(keys_row, groups_row, n_groups, cut, KEY_TILE)
            tl.debug_barrier()  # the list was stored by other threads of this program
            thr = _value(
                _kth_key(row_ptr, groups_row, n_sel, k, cut, top, V, True, G, GROUP_TILE, NC)
            )
            s_acc = 0.0
            a_acc = 0.0
            for start in range(0, n_sel, GROUP_TILE):
                z, ok, col = _group_tile(row_ptr, groups_row, start, n_sel, V, G, GROUP_TILE)
                take = ok & (z >= thr) & (col != x)
                e = tl.where(take, tl.exp(z - m), 0.0)
                s_acc += tl.sum(e)
                a_acc += tl.sum(e * _finite(z - m))
            s_top = s_acc / sum_all
            plogp_top = a_acc / sum_all - log_z * s_top

    _store_sums(out_ptr, row, N, m, log_z, z_x, u, plogp_rest, s_top, plogp_top, thr)


@triton.jit
def _list_groups(keys_row, groups_row, n_groups, cut, TILE: tl.constexpr):
    """Writes the indices of the groups whose maximum key is >= cut; returns how many."""
    n_sel = 0
    for start in range(0, n_groups, TILE):
        group = start + tl.arange(0, TILE)
        take = tl.load(keys_row + group, mask=group < n_groups, other=I32_MIN) >= cut
        slot = n_sel + tl.cumsum(take.to(tl.int32), axis=0) - 1
        tl.store(groups_row + slot, group, mask=take)
        n_sel += tl.sum(take.to(tl.int32), axis=0)
    return n_sel


@triton.jit
def _store_sums(out_ptr, row, N, z_max, log_z, z_x, u, plogp_rest, s_top, plogp_top, thr):
    tl.store(out_ptr + row, z_max)
    tl.store(out_ptr + N + row, log_z)
    tl.store(out_ptr + 2 * N + row, z_x)
    tl.store(out_ptr + 3 * N + row, u)
    tl.store(out_ptr + 4 * N + row, plogp_rest)
    tl.store(out_ptr + 5 * N + row, s_top)
    tl.store(out_ptr + 6 * N + row, plogp_top)
    tl.store(out_ptr + 7 * N + row, thr)


@triton.jit
def _grad_kernel(
    z_ptr,
    z_stride,
    g_ptr,
    g_stride,
    x_ptr,
    lse_ptr,
    thr_ptr,
    c_tail_ptr,
    c_top_ptr,
    g_x_ptr,
    V,
    RANKED: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """g_j = exp(z_j - lse) * c_j, c_j = c_top on K and c_tail elsewhere; g_x at column x."""
    row = tl.program_id(0).to(tl.int64)
    x = tl.load(x_ptr + row)
    lse = tl.load(lse_ptr + row)
    thr = tl.load(thr_ptr + row)
    c_tail = tl.load(c_tail_ptr + row)
    c_top = tl.load(c_top_ptr + row)
    g_x = tl.load(g_x_ptr + row)
    for start in range(0, V, BLOCK):
        col = start + tl.arange(0, BLOCK)
        live = col < V
        z = tl.load(z_ptr + row * z_stride + col, mask=live, other=0.0).to(tl.float32)
        c = tl.where(z >= thr, c_top, c_tail) if RANKED else c_tail
        g = tl.where(col == x, g_x, tl.exp(z - lse) * c)
        tl.store(g_ptr + row * g_stride + col, g.to(g_ptr.dtype.element_ty), mask=live)


# triton.jit chose the interpreter or the compiler when this module was imported.
INTERPRETED = not isinstance(_grad_kernel, triton.runtime.JITFunction)


class GradState(NamedTuple):
    logits: Tensor  # [N, V], unit column stride
    x: Tensor
    lse: Tensor
    thr: Tensor


def _block(vocab: int) -> int:
    return min(MAX_BLOCK, triton.next_power_of_2(vocab))


def row_sums(logits: Tensor, x: Tensor, sh: Shaping, need_top: bool) -> tuple[RowSums, GradState]:
    """The sums of [N, V] logits; x must be a column in every row (else that row is nan).

    Selecting K takes two int32 scratch arrays of N * ceil(V / GROUP) (3% of float32 logits).
    """
    z = logits if logits.stride(-1) == 1 else logits.contiguous()
    n, vocab = z.shape
    block = _block(vocab)
    group = min(GROUP, block)
    select = need_top and not sh.all_top(vocab)
    n_groups = triton.cdiv(vocab, group)
    scratch = (n, n_groups) if select else (1,)
    keys = torch.empty(scratch, dtype=torch.int32, device=z.device)
    groups = torch.empty(scratch, dtype=torch.int32, device=z.device)
    out = torch.empty(N_SUMS, n, dtype=torch.float32, device=z.device)
    _row_sums_kernel[(n,)](
        z,
        z.stride(0),
        x,
        out,
        keys,
        groups,
        n,
        vocab,
        sh.k,
        n_groups,
        NEED_TOP=need_top,
        ALL_TOP=sh.all_top(vocab),
        SELECT=select,
        BLOCK=block,
        G=group,
        KEY_TILE=KEY_TILE,
        GROUP_TILE=GROUP_TILE,
        NC=CUTS,
        num_warps=8,
    )
    z_max, log_z, z_x, u, plogp_rest, s_top, plogp_top, thr = out.unbind(0)
    sums = RowSums(z_max, log_z, z_x, u, plogp_rest, s_top, plogp_top, z_x >= thr)
    return sums, GradState(z, x, z_max + log_z, thr)


def gradient(
    state: GradState, terms: RowTerms, sh: Shaping, scale: Tensor, overwrite_logits: bool = False
) -> Tensor:
    """scale * dL/dz in the logits' dtype; written over the logits when the caller owns them
    (each element is read before the same lane writes it)."""
    z = state.logits
    n, vocab = z.shape
    c_tail = ((terms.W - sh.base_lam(vocab)) * scale).float().contiguous()
    c_top = ((terms.W - sh.lam_top) * scale).float().contiguous()
    g_x = (terms.g_x * scale).float().contiguous()
    grad = z if overwrite_logits else torch.empty_like(z)
    _grad_kernel[(n,)](
        z,
        z.stride(0),
        grad,
        grad.stride(0),
        state.x,
        state.lse,
        state.thr,
        c_tail,
        c_top,
        g_x,
        vocab,
        RANKED=sh.ranks_matter and not sh.all_top(vocab),
        BLOCK=_block(vocab),
        num_warps=8,
    )
    return grad
