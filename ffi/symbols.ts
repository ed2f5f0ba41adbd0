/**
 * The one symbol table of the native library, in runtime-neutral types. The Deno and Bun
 * adapters translate it for `Deno.dlopen` and `bun:ffi`. It mirrors
 * `kernels/include/spool.h` line for line; `ffi/symbols_test.ts` checks that every function
 * the header declares is here with the same arity.
 */

/** Runtime-neutral FFI value types. `ptr` is any pointer; sizes are i32 or f64 (see spool.h). */
export type NativeType = "i32" | "u32" | "f32" | "f64" | "ptr" | "void";

/** One function: parameter types and result type. */
export interface SymbolDef {
  readonly parameters: readonly NativeType[];
  readonly result: NativeType;
}

const fn = <const P extends readonly NativeType[], const R extends NativeType>(
  parameters: P,
  result: R,
) => ({ parameters, result });

/** spool_moe_ffn's parameters (spool_moe_ffn_phase adds the phase). */
const MOE_FFN_ARGS = [
  "ptr",
  "ptr",
  "i32",
  "i32",
  "i32",
  "i32",
  "i32", // pool x n_tok n_embd n_ff n_expert k
  "ptr",
  "ptr", // ids weights
  "ptr",
  "i32",
  "ptr",
  "i32",
  "ptr",
  "i32", // gate gate_type up up_type down down_type
  "ptr",
  "ptr",
  "ptr", // gate_b up_b down_b
  "i32",
  "ptr",
  "ptr", // act y scratch
] as const;

/** Every exported function of libspool. */
export const symbols = {
  spool_abi_version: fn([], "i32"),
  spool_cpu_features: fn([], "i32"),
  spool_set_impl: fn(["i32"], "i32"),
  spool_get_impl: fn([], "i32"),
  spool_last_errno: fn([], "i32"),

  spool_pool_create: fn(["i32"], "ptr"),
  spool_pool_destroy: fn(["ptr"], "void"),
  spool_pool_size: fn(["ptr"], "i32"),

  spool_file_open: fn(["ptr", "i32"], "i32"),
  spool_file_close: fn(["i32"], "i32"),
  spool_file_size: fn(["i32"], "f64"),
  spool_mmap: fn(["i32", "f64"], "ptr"),
  spool_munmap: fn(["ptr", "f64"], "i32"),
  spool_madvise: fn(["ptr", "f64", "f64", "i32"], "i32"),
  spool_pread: fn(["i32", "ptr", "f64", "f64"], "f64"),
  spool_pread_direct: fn(["i32", "ptr", "f64", "f64"], "f64"),
  spool_direct_span: fn(["f64", "f64"], "f64"),
  spool_alloc: fn(["f64", "i32"], "ptr"),
  spool_free: fn(["ptr"], "void"),
  spool_memcpy: fn(["ptr", "ptr", "f64"], "void"),

  spool_type_block_size: fn(["i32"], "i32"),
  spool_type_block_bytes: fn(["i32"], "i32"),
  spool_dequantize_row: fn(["i32", "ptr", "ptr", "i32"], "i32"),
  spool_quantize: fn(["ptr", "i32", "ptr", "ptr", "i32", "i32"], "i32"),
  spool_matmul_scratch_bytes: fn(["i32", "i32", "i32", "i32"], "f64"),
  spool_matmul: fn(["ptr", "i32", "ptr", "i32", "i32", "ptr", "i32", "ptr", "i32", "ptr"], "i32"),
  spool_matmul_batched: fn(
    [
      "ptr",
      "i32",
      "ptr",
      "i32",
      "i32",
      "f64",
      "i32", // pool type w rows cols w_batch_bytes n_batch
      "ptr",
      "i32",
      "i32",
      "i32", // x x_tok_stride x_batch_stride n_tok
      "ptr",
      "i32",
      "i32", // y y_tok_stride y_batch_stride
      "i32",
      "ptr", // act scratch
    ],
    "i32",
  ),
  spool_bench_read_bandwidth: fn(["ptr", "f64", "i32", "ptr"], "f64"),
  spool_moe_scratch_bytes: fn(["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32"], "f64"),
  spool_moe_ffn: fn(MOE_FFN_ARGS, "i32"),
  spool_moe_ffn_phase: fn([...MOE_FFN_ARGS, "i32"], "i32"), // + phase

  spool_rmsnorm: fn(["ptr", "ptr", "ptr", "i32", "i32", "f32"], "i32"),
  spool_softmax: fn(["ptr", "i32", "i32"], "i32"),
  spool_silu: fn(["ptr", "ptr", "i32"], "i32"),
  spool_swiglu: fn(["ptr", "ptr", "ptr", "i32"], "i32"),
  spool_f32_to_f16: fn(["ptr", "ptr", "i32"], "i32"),
  spool_f16_to_f32: fn(["ptr", "ptr", "i32"], "i32"),
  spool_rope: fn(
    [
      "ptr",
      "ptr",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32", // x pos n_tok n_head head_dim n_rot mode
      "f32",
      "f32",
      "f32",
      "f32",
      "f32",
      "f32",
      "i32", // base scale ext attn beta_fast beta_slow n_ctx_orig
      "ptr", // freq_factors
    ],
    "i32",
  ),
  spool_topk_route: fn(
    ["ptr", "ptr", "i32", "i32", "i32", "i32", "i32", "f32", "ptr", "ptr"],
    "i32",
  ),
  spool_topk_route_groups: fn(
    [
      "ptr",
      "ptr",
      "i32",
      "i32",
      "i32", // logits bias n_tok n_expert k
      "i32",
      "i32",
      "f32",
      "i32",
      "i32", // gating norm scale n_group n_group_used
      "ptr",
      "ptr", // ids weights
    ],
    "i32",
  ),
  spool_attention: fn(
    [
      "ptr",
      "ptr",
      "ptr",
      "ptr",
      "ptr", // pool q k v out
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32", // n_tok n_head n_head_kv head_dim n_kv pos0
      "f32",
      "i32",
      "ptr",
      "i32", // scale window sinks flags
    ],
    "i32",
  ),

  spool_attention_ex: fn(
    [
      "ptr",
      "ptr",
      "ptr",
      "ptr",
      "ptr", // pool q k v out
      "i32",
      "i32",
      "i32",
      "i32",
      "i32", // n_tok n_head n_head_kv head_dim_k head_dim_v
      "i32",
      "i32",
      "i32",
      "i32", // k_row_stride v_row_stride n_kv pos0
      "f32",
      "i32",
      "ptr",
      "i32", // scale window sinks flags
    ],
    "i32",
  ),

  // gated DeltaNet (spool.h "gated DeltaNet")
  spool_ssm_conv: fn(
    [
      "ptr",
      "ptr",
      "ptr",
      "ptr",
      "ptr", // pool x w state y
      "i32",
      "i32",
      "i32",
      "i32", // n_tok channels k flags
    ],
    "i32",
  ),
  spool_gdn_gates: fn(
    [
      "ptr",
      "ptr",
      "ptr",
      "ptr",
      "ptr",
      "ptr", // alpha b dt_bias a g beta
      "i32",
      "i32", // n_tok n_head
    ],
    "i32",
  ),
  spool_gated_delta_net: fn(
    [
      "ptr",
      "ptr",
      "ptr",
      "ptr",
      "ptr",
      "ptr",
      "ptr",
      "ptr", // pool q k v g beta state out
      "i32",
      "i32",
      "i32",
      "i32",
      "i32", // n_tok n_k_head n_v_head head_dim_k head_dim_v
      "i32",
      "i32",
      "i32", // q_stride k_stride v_stride
      "f32",
      "f32",
      "i32", // scale eps flags
    ],
    "i32",
  ),
  spool_gated_rmsnorm: fn(["ptr", "ptr", "ptr", "ptr", "i32", "i32", "f32"], "i32"),

  // expert pager (spool.h "expert pager"; runtime/experts/pager.ts)
  spool_pager_create: fn(["i32"], "ptr"),
  spool_pager_create_backend: fn(["i32", "i32"], "ptr"),
  spool_pager_destroy: fn(["ptr"], "void"),
  spool_pager_threads: fn(["ptr"], "i32"),
  spool_pager_submit: fn(["ptr", "ptr", "i32"], "i32"),
  spool_pager_wait: fn(["ptr", "i32"], "i32"),
  spool_pager_poll: fn(["ptr", "i32"], "i32"),
  spool_pager_error: fn(["ptr", "i32", "i32"], "f64"),
  spool_pager_stat: fn(["ptr", "i32"], "f64"),
  spool_pager_register: fn(["ptr", "ptr", "f64"], "i32"),
  spool_pager_unregister: fn(["ptr", "ptr"], "i32"),
} as const satisfies Record<string, SymbolDef>;

/** Names of all native functions. */
export type SymbolName = keyof typeof symbols;
