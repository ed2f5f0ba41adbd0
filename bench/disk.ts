/**
 * Disk benchmark: direct (O_DIRECT, page cache bypassed) random-read bandwidth of a large
 * file through the native expert pager, per queue depth and request size. The best number
 * is the SSD ceiling of DESIGN.md §4 (tok/s <= BW_ssd / ((1-h)·L·k·S)).
 *
 *   deno run -A bench/disk.ts [FILE] [--depths 1,4,8,16,32] [--sizes 1,4] [--seconds 2]
 *                             [--rounds 3] [--backends auto|threads|uring|threads,uring]
 *                             [--unregistered]
 *   bun bench/disk.ts [FILE] ...
 *
 * FILE defaults to bench/out/qwen3-30b-a3b-q4km.gguf. Sizes are MiB per request; depths are
 * pager threads (reads in flight). Requests start at random 4096-aligned offsets over the
 * whole file, so neither the drive's read-ahead nor a warm page cache helps (O_DIRECT reads
 * go to the device even for cached pages). Each depth is the median of --rounds runs, the
 * depths alternating in order round by round (DESIGN.md §7). "in flight" is the mean number
 * of reads the workers actually had outstanding (busy time / wall time); "CPU s/GB" the CPU
 * time of the whole process (user + system, every thread) per GB read: what reading costs
 * the cores that should be computing. --backends measures the pager's io_uring and threads
 * backends one after the other (default: auto, the one spool uses here); io_uring reads go
 * into registered buffers (Pager.register) unless --unregistered.
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { measureDiskBandwidth, type PagerBackend } from "../runtime/experts/pager.ts";

export { measureDiskBandwidth };

if (import.meta.main) {
  const { values: args, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      depths: { type: "string", default: "1,4,8,16,32" },
      sizes: { type: "string", default: "1,4" },
      seconds: { type: "string", default: "2" },
      rounds: { type: "string", default: "3" },
      backends: { type: "string", default: "auto" },
      unregistered: { type: "boolean", default: false },
    },
  });
  const path = positionals[0] ??
    fileURLToPath(new URL("./out/qwen3-30b-a3b-q4km.gguf", import.meta.url));
  const depths = args.depths!.split(",").map(Number);
  const sizes = args.sizes!.split(",").map(Number);
  const seconds = Number(args.seconds);
  const backends = args.backends!.split(",") as PagerBackend[];
  let best = 0;
  const runs = sizes.flatMap((mib) => backends.map((backend) => ({ mib, backend })));
  for (const [i, { mib, backend }] of runs.entries()) {
    const r = measureDiskBandwidth(path, {
      depths,
      requestBytes: Math.round(mib * 1024 * 1024 / 4096) * 4096,
      seconds,
      rounds: Number(args.rounds),
      backend,
      register: !args.unregistered,
    });
    if (i === 0) {
      console.log(
        `${r.path}: ${(r.size / 1e9).toFixed(2)} GB, ` +
          (r.direct ? "O_DIRECT (page cache bypassed)" : "BUFFERED (O_DIRECT refused)") +
          (r.registered ? ", registered buffers" : ""),
      );
      console.log(
        `median of ${args.rounds} rounds (depths alternate), ${seconds} s each`,
      );
      console.log("backend  request  depth     GB/s   min..max  in flight  CPU s/GB     GB read");
    }
    for (const row of r.rows) {
      best = Math.max(best, row.gbps);
      console.log(
        `${r.backend.padEnd(7)} ${String(mib).padStart(4)} MiB ${String(row.depth).padStart(6)} ` +
          `${row.gbps.toFixed(2).padStart(8)} ` +
          `${row.gbpsMin.toFixed(2).padStart(5)}..${row.gbpsMax.toFixed(2).padEnd(4)} ` +
          `${row.meanInFlight.toFixed(1).padStart(10)} ` +
          `${row.cpuSecPerGB.toFixed(3).padStart(9)} ` +
          `${(row.bytes / 1e9).toFixed(2).padStart(11)}`,
      );
    }
  }
  console.log(`best: ${best.toFixed(2)} GB/s`);
}
