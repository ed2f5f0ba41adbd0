/**
 * Gated full attention (Qwen3.5 / Qwen3-Next): the q projection yields, per head, the query
 * and an output gate side by side ([q (head_dim) | gate (head_dim)] per head); q and k get
 * RMS norms per head and partial NeoX rope; the attention output is multiplied by
 * sigmoid(gate) before the output projection (llama.cpp's qwen35moe build_layer_attn).
 * Input: the normed rows in buf.h; output: buf.o.
 *
 * @module
 */
import { ropeParams } from "./_attention.ts";
import type { StepContext } from "./step.ts";
import type { LayerWeights } from "./weights.ts";

/** Gated attention of layer `L` on buf.h into buf.o. */
export function gatedAttention(ctx: StepContext, L: LayerWeights, li: number): void {
  const { be, cfg: c, buf: B, m } = ctx;
  const H = c.nHead, hd = c.headDim;
  const qg = ctx.tmp("gattn.qg", m * H * 2 * hd);
  const gate = ctx.tmp("gattn.gate", m * H * hd);
  ctx.mm(L.mat("attn_q"), B.h.ptr, m, qg.ptr);
  ctx.mm(L.mat("attn_k"), B.h.ptr, m, B.k.ptr);
  ctx.mm(L.mat("attn_v"), B.h.ptr, m, B.v.ptr);
  // split [q | gate] per head
  const src = qg.f32, q = B.q.f32, g = gate.f32;
  for (let r = 0; r < m * H; r++) {
    const o = r * 2 * hd;
    q.set(src.subarray(o, o + hd), r * hd);
    g.set(src.subarray(o + hd, o + 2 * hd), r * hd);
  }
  be.rmsnorm(B.q.ptr, L.vec("attn_q_norm").ptr, B.q.ptr, m * H, hd, c.rmsEps);
  be.rmsnorm(B.k.ptr, L.vec("attn_k_norm").ptr, B.k.ptr, m * c.nHeadKv, hd, c.rmsEps);
  const rope = ropeParams(c);
  be.rope(B.q.ptr, ctx.pos, m, H, hd, rope);
  be.rope(B.k.ptr, ctx.pos, m, c.nHeadKv, hd, rope);
  ctx.attend(li, {
    nHead: H,
    nHeadKv: c.nHeadKv,
    headDim: hd,
    scale: 1 / Math.sqrt(hd),
    window: 0,
    sinks: null,
  });
  // out *= sigmoid(gate), as f32 (ggml_sigmoid, then ggml_mul)
  const a = B.att.f32;
  for (let i = 0, n = m * H * hd; i < n; i++) {
    a[i] = Math.fround(a[i] * Math.fround(1 / (1 + Math.exp(-g[i]))));
  }
  ctx.mm(L.mat("attn_output"), B.att.ptr, m, B.o.ptr);
}
