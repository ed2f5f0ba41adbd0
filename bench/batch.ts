/**
 * Batch benchmark (issue 6): aggregate greedy decode throughput of B sequences stepped
 * together, for a model larger than the RAM it is given, spool against llama.cpp
 * (`llama-batched-bench --no-repack`, built from the source node-llama-cpp ships; see
 * bench/build_llama.sh) in the same run, and the batched prefill of the B prompts.
 *
 *   deno run -A bench/batch.ts [--model FILE] [--cap 4G] [--bs 1,8,32,64] [--prompt-len 8]
 *                              [--decode 8] [--threads 2] [--llama-decode 2] [--no-llama]
 *                              [--no-compute]
 *
 * Needs root (memory cgroup, drop_caches; DESIGN.md §7). Each run is a fresh process in the
 * cgroup, cold. spool runs Session.evalMany: in every step each routed expert is read once
 * for all the sequences routed to it (expert-major).
 *
 * The ceiling of each B is the smaller of
 *   - the SSD bound: B tokens per step over the time to read the step's missing experts
 *     (of the L · N(1 − (1 − k/N)^B) a step routes to, those not in the cache; prefetch off,
 *     so every byte read was needed) at the disk bandwidth measured in this run, or at the
 *     bandwidth the run's own reads reached, and
 *   - the compute bound: the same B-row step with every expert resident in RAM (measured in
 *     this run, uncapped, page cache warm).
 */
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { measureDiskBandwidth } from "../runtime/experts/pager.ts";
import { readGGUF } from "../runtime/gguf/reader.ts";
import { inspectGGUF } from "../runtime/inspect.ts";
import { parseSize } from "../runtime/experts/budget.ts";
import { distinctExperts } from "../runtime/batch/plan.ts";
import { dropCaches, type Outcome, peakText, runCapped } from "./_cgroup.ts";

const { values: a } = parseArgs({
  options: {
    model: { type: "string" },
    cap: { type: "string", default: "4G" },
    bs: { type: "string", default: "1,8,32,64" },
    "prompt-len": { type: "string", default: "8" },
    decode: { type: "string", default: "8" },
    threads: { type: "string", default: "2" },
    "llama-decode": { type: "string", default: "2" },
    "no-llama": { type: "boolean", default: false },
    "no-compute": { type: "boolean", default: false },
    prefetch: { type: "string", default: "off" },
  },
});

const model = a.model ?? fileURLToPath(new URL("./out/qwen3-30b-a3b-q4km.gguf", import.meta.url));
if (!existsSync(model)) {
  console.error(`${model} is missing: make it with bench/offload.ts or spool synth (see README)`);
  Deno.exit(1);
}
const WORKER = fileURLToPath(new URL("./_batch_worker.ts", import.meta.url));
const rep = inspectGGUF(readGGUF(model), model);
const L = rep.moeLayers, N = rep.expertCount, k = rep.expertUsedCount, S = rep.bytesPerExpert;
const cap = parseSize(a.cap!) as number;
const Bs = a.bs!.split(",").map(Number);
const PL = a["prompt-len"]!, D = a.decode!, T = a.threads!;
const deno = Deno.execPath();

console.log(
  `model: ${model} (${
    (rep.fileSize / 1e9).toFixed(2)
  } GB, ${L} MoE layers × ${N} experts, top-${k}, ` +
    `${(S / 1e6).toFixed(2)} MB per expert); cap ${a.cap}; threads ${T}`,
);
dropCaches();
const disk = measureDiskBandwidth(model, { depths: [4, 8], requestBytes: 1 << 20, seconds: 2 });
const bw = Math.max(...disk.rows.map((r) => r.gbps)) * 1e9;
console.log(`disk (O_DIRECT, 1 MiB random reads): ${(bw / 1e9).toFixed(2)} GB/s`);

function llamaBin(): string {
  const root = fileURLToPath(new URL("../", import.meta.url));
  const out = new Deno.Command("bash", { args: [`${root}bench/build_llama.sh`] }).outputSync();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr).slice(-2000));
  return new TextDecoder().decode(out.stdout).trim();
}

interface Row {
  B: number;
  spool?: Outcome;
  compute?: Record<string, unknown>;
  llama?: Outcome;
}
const rows: Row[] = Bs.map((B) => ({ B }));
if (!a["no-compute"]) {
  // the compute bound first, with the whole file in the page cache (read once here)
  console.log("warming the page cache with the whole model (uncapped)...");
  new Deno.Command("dd", { args: [`if=${model}`, "of=/dev/null", "bs=8M"], stderr: "null" })
    .outputSync();
  for (const row of rows) {
    console.log(`[B=${row.B}] compute bound (uncapped, warm)...`);
    const c = new Deno.Command(deno, {
      args: ["run", "-A", WORKER, "spool", model, String(row.B), PL, "4", T, "mapped"],
      stdout: "piped",
      stderr: "inherit",
    }).outputSync();
    const line = new TextDecoder().decode(c.stdout).trim().split("\n").pop() ?? "";
    row.compute = line.startsWith("{") ? JSON.parse(line) : undefined;
    console.log("  ", line);
  }
}
for (const row of rows) {
  const B = row.B;
  console.log(`[B=${B}] spool under ${a.cap}...`);
  row.spool = await runCapped(cap, [
    deno,
    "run",
    "-A",
    WORKER,
    "spool",
    model,
    String(B),
    PL,
    D,
    T,
    "cache",
    a.prefetch!,
  ]);
  console.log("  ", JSON.stringify(row.spool.result ?? row.spool.error), peakText(row.spool));
  if (!a["no-llama"]) {
    // llama.cpp's batched bench without repacking (mmap, paging by faults): its best setting
    // under a cap (node-llama-cpp's prebuilt library repacks into RAM and is killed there)
    console.log(`[B=${B}] llama-batched-bench --no-repack under ${a.cap}...`);
    const ctx = String(B * (Number(PL) + Number(a["llama-decode"]) + 16));
    row.llama = await runCapped(cap, [
      `${llamaBin()}/llama-batched-bench`,
      ...["-m", model, "-c", ctx, "-b", "2048", "-ub", "512", "-npp", PL],
      ...["-ntg", a["llama-decode"]!, "-npl", String(B), "-t", T, "--no-repack"],
      ...["--output-format", "jsonl"],
    ], 1800);
    console.log("  ", JSON.stringify(row.llama.result ?? row.llama.error), peakText(row.llama));
  }
}

const head = [
  "B",
  "spool tok/s",
  "hit rate",
  "experts read/step",
  "read GB/s",
  "SSD bound (disk bench)",
  "SSD bound (in-run reads)",
  "compute bound",
  "spool / ceiling",
  "llama.cpp tok/s",
  "spool/llama.cpp",
  "prefill spool / llama.cpp tok/s",
];
console.log(`\n| ${head.join(" | ")} |\n|${head.map(() => "---").join("|")}|`);
for (const r of rows) {
  const s = r.spool?.ok ? r.spool.result! : null;
  const tok = s ? Number(s.decodeTokS) : 0;
  const h = s ? Number(s.hitRate ?? 0) : 0;
  // what a step must read: the step's distinct experts that were not in the cache
  const bytes = s ? Math.max(1, Number(s.bytesPerStep)) : 1;
  const ssd = (r.B * bw) / bytes;
  const runBw = s ? Number(s.readGBps) * 1e9 : 0;
  const ssdRun = (r.B * runBw) / bytes;
  const comp = r.compute ? Number(r.compute.decodeTokS) : Infinity;
  const ceil = Math.min(ssd, comp), ceilRun = Math.min(ssdRun, comp);
  const lt = r.llama?.ok ? Number(r.llama.result!.speed_tg) : 0;
  const lp = r.llama?.ok ? Number(r.llama.result!.speed_pp) : 0;
  const sp = s ? Number(s.prefillTokS) : 0;
  console.log(
    `| ${
      [
        r.B,
        s ? tok.toFixed(2) : r.spool?.error ?? "-",
        s ? h.toFixed(3) : "-",
        s ? `${(bytes / S).toFixed(0)} of ${(L * distinctExperts(N, k, r.B)).toFixed(0)}` : "-",
        s ? (runBw / 1e9).toFixed(2) : "-",
        ssd.toFixed(2),
        ssdRun.toFixed(2),
        Number.isFinite(comp) ? comp.toFixed(2) : "-",
        s ? `${(tok / ceil).toFixed(2)} / ${(tok / ceilRun).toFixed(2)}` : "-",
        lt > 0 ? lt.toFixed(3) : r.llama ? r.llama.error ?? "failed" : "-",
        lt > 0 && s ? `${(tok / lt).toFixed(1)}×` : "-",
        lp > 0 && s ? `${sp.toFixed(1)} / ${lp.toFixed(1)} (${(sp / lp).toFixed(2)}×)` : "-",
      ].join(" | ")
    } |`,
  );
}
console.log(
  `\nceiling = min(SSD bound, compute bound); SSD bound = B × BW / bytes a step read ` +
    `(prefetch ${a.prefetch}: only experts the step routed to and missed); "spool / ceiling" ` +
    `is given for the disk benchmark's BW and for the run's own read BW.`,
);
