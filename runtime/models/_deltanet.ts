/**
 * Gated DeltaNet linear attention (Qwen3.5 / Qwen3-Next recurrent layers), llama.cpp's
 * qwen35moe / qwen3next `build_layer_attn_linear`. Input: the normed rows in buf.h; output:
 * buf.o. With nK key heads of dk, nV value heads of dv and conv kernel kc:
 *
 *   qkv (m, 2·nK·dk + nV·dv) = attn_qkv · h        [q of each key head | k | v of each value head]
 *   z   (m, nV·dv)           = attn_gate · h
 *   b, a (m, nV)             = ssm_beta · h, ssm_alpha · h   (qwen3next: one fused ssm_ba)
 *   β = sigmoid(b);  g = softplus(a + ssm_dt) · ssm_a        (ssm_a = −exp(A_log): g ≤ 0)
 *   qkv = silu(causal depthwise conv_kc(qkv))              per sequence, with its conv state
 *   per value head h (key head h % nK "tiled", or h / (nV/nK) "grouped"), per token:
 *     q, k L2-normalized;  S ← e^g S;  δ = β (v − Sᵀk);  S ← S + k δᵀ;  o = Sᵀq / √dk
 *   o = rmsnorm(o) · ssm_norm · silu(z)  (per head);  out = ssm_out · o
 *
 * The conv and the recurrence run per sequence on its own state (the engine's
 * {@link StepContext.forEachSequence}); everything else runs on all rows of the step.
 *
 * @module
 */
import type { StepContext } from "./step.ts";
import type { LayerWeights } from "./weights.ts";

/** Gated DeltaNet layer `L` (index `li`) on buf.h into buf.o. */
export function gatedDeltaNet(ctx: StepContext, L: LayerWeights, li: number): void {
  const { be, cfg: c, buf: B, m } = ctx;
  const d = c.deltaNet!;
  const nK = d.nKHeads, nV = d.nVHeads, dk = d.headKDim, dv = d.headVDim;
  const ch = d.convChannels;
  const qkv = ctx.tmp("gdn.qkv", m * ch);
  const z = ctx.tmp("gdn.z", m * nV * dv);
  const b = ctx.tmp("gdn.b", m * nV), a = ctx.tmp("gdn.a", m * nV);
  const out = ctx.tmp("gdn.out", m * nV * dv);
  ctx.mm(L.mat("attn_qkv"), B.h.ptr, m, qkv.ptr);
  ctx.mm(L.mat("attn_gate"), B.h.ptr, m, z.ptr);
  const fused = L.matOpt("ssm_ba");
  if (fused) {
    // per key head: its r = nV/nK betas, then its r alphas
    const ba = ctx.tmp("gdn.ba", m * 2 * nV);
    ctx.mm(fused, B.h.ptr, m, ba.ptr);
    const r = nV / nK, src = ba.f32, bv = b.f32, av = a.f32;
    for (let t = 0; t < m; t++) {
      for (let g = 0; g < nK; g++) {
        for (let i = 0; i < r; i++) {
          bv[t * nV + g * r + i] = src[t * 2 * nV + g * 2 * r + i];
          av[t * nV + g * r + i] = src[t * 2 * nV + g * 2 * r + r + i];
        }
      }
    }
  } else {
    ctx.mm(L.mat("ssm_beta"), B.h.ptr, m, b.ptr);
    ctx.mm(L.mat("ssm_alpha"), B.h.ptr, m, a.ptr);
  }
  // g into a, beta into b (in place)
  be.gdnGates(a.ptr, b.ptr, L.vec("ssm_dt.bias").ptr, L.vec("ssm_a").ptr, a.ptr, b.ptr, m, nV);
  const conv = L.vec("ssm_conv1d").ptr;
  const scale = 1 / Math.sqrt(dk);
  ctx.forEachSequence(li, (row, n, convState, state) => {
    const x = qkv.ptrAt(row * ch * 4);
    be.ssmConv(x, conv, convState, x, n, ch, d.convKernel, true);
    be.gatedDeltaNet({
      q: x,
      k: qkv.ptrAt((row * ch + nK * dk) * 4),
      v: qkv.ptrAt((row * ch + 2 * nK * dk) * 4),
      g: a.ptrAt(row * nV * 4),
      beta: b.ptrAt(row * nV * 4),
      state,
      out: out.ptrAt(row * nV * dv * 4),
      n,
      nKHead: nK,
      nVHead: nV,
      headDimK: dk,
      headDimV: dv,
      qStride: ch,
      kStride: ch,
      vStride: ch,
      scale,
      eps: c.rmsEps,
      l2norm: true,
      tiledHeads: d.vHeadOrder === "tiled",
    });
  });
  be.gatedRmsnorm(out.ptr, L.vec("ssm_norm").ptr, z.ptr, out.ptr, m * nV, dv, c.rmsEps);
  ctx.mm(L.mat("ssm_out"), out.ptr, m, B.o.ptr);
}
