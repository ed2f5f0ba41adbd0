/**
 * The memory budget: size parsing, cgroup v1/v2 and meminfo detection against fixture
 * trees, and budget plans for the 9.5 GB qwen3moe shape of DESIGN.md §6.
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  BudgetError,
  type BudgetInput,
  defaultSlotBytes,
  detectCgroupLimit,
  detectMemoryLimit,
  formatSize,
  type MemoryLimit,
  parseCgroupLimit,
  parseMeminfo,
  parseSize,
  planBudget,
  SizeParseError,
} from "./budget.ts";

const GiB = 1024 ** 3;

Deno.test("parseSize: binary and decimal units, bytes, auto", () => {
  const cases: [string | number, number | "auto"][] = [
    ["4G", 4 * GiB],
    ["4GiB", 4 * GiB],
    ["4g", 4 * GiB],
    [" 2 GiB ", 2 * GiB],
    ["512M", 512 * 1024 ** 2],
    ["512MiB", 512 * 1024 ** 2],
    ["6.5GB", 6.5e9],
    ["1.5K", 1536],
    ["100KB", 100_000],
    ["0.5T", 512 * GiB],
    ["2TB", 2e12],
    ["123456", 123456],
    ["123456B", 123456],
    [".5G", GiB / 2],
    ["auto", "auto"],
    ["AUTO", "auto"],
    [4096, 4096],
    [3.7, 3],
  ];
  for (const [input, want] of cases) assertEquals(parseSize(input), want, String(input));
  for (const bad of ["", "G", "4X", "-1G", "1e9", "4 GBs", "four", "1.2.3G", "9999999T"]) {
    throws(() => parseSize(bad, "--ram-budget"), (e: unknown) => {
      assert(e instanceof SizeParseError, String(e));
      assertEquals(e.input, bad);
      assert(e.message.startsWith(`Cannot parse --ram-budget "${bad}": expected bytes`));
      assert(e.message.includes('"4G", "512MiB", "6.5GB", or "auto"'));
      return true;
    });
  }
  throws(() => parseSize(-1), SizeParseError);
  throws(() => parseSize(NaN), SizeParseError);
  assertEquals(formatSize(3.1 * GiB), "3.1 GiB");
  assertEquals(formatSize(512 * 1024 ** 2), "512 MiB");
});

/** A fixture tree: `files` maps relative paths to contents. */
function withTree(files: Record<string, string>, fn: (root: string) => void): void {
  const root = mkdtempSync(join(tmpdir(), "spool_budget_"));
  try {
    for (const [rel, text] of Object.entries(files)) {
      const p = join(root, rel);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, text);
    }
    fn(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const MEMINFO = "MemTotal:       24683656 kB\nMemFree:        12429112 kB\n" +
  "MemAvailable:   24095832 kB\nBuffers:          123 kB\n";
const V1_MOUNTS = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n" +
  "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n" +
  "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n" +
  "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
const UNLIMITED_V1 = "9223372036854771712\n";

Deno.test("meminfo and limit files parse to bytes", () => {
  assertEquals(parseMeminfo(MEMINFO), { available: 24095832 * 1024, total: 24683656 * 1024 });
  assertEquals(parseMeminfo("MemTotal: 10 kB\n"), { available: null, total: 10240 });
  assertEquals(parseCgroupLimit("4294967296\n"), 4 * GiB);
  assertEquals(parseCgroupLimit("max\n"), null);
  assertEquals(parseCgroupLimit(UNLIMITED_V1), null);
  assertEquals(parseCgroupLimit("junk"), null);
  assertEquals(parseCgroupLimit(null), null);
});

Deno.test("cgroup v1: the limit of this process's cgroup (DESIGN.md §7's bench cgroup)", () => {
  const cg = "sys/fs/cgroup/memory/process_api/d999";
  withTree({
    "proc/meminfo": MEMINFO,
    "proc/self/mounts": V1_MOUNTS,
    "proc/self/cgroup": "9:name=systemd:/\n4:memory:/process_api/d999/bench\n3:cpuset:/\n0::/\n",
    "sys/fs/cgroup/memory/memory.limit_in_bytes": UNLIMITED_V1,
    [`${cg}/memory.limit_in_bytes`]: UNLIMITED_V1,
    [`${cg}/bench/memory.limit_in_bytes`]: "4294967296\n",
    "sys/fs/cgroup/unified/cgroup.procs": "",
  }, (root) => {
    const probe = { procRoot: `${root}/proc`, sysRoot: `${root}/sys`, platform: "linux" };
    const cgl = detectCgroupLimit(probe);
    assertEquals(cgl, {
      bytes: 4 * GiB,
      file: `${root}/${cg}/bench/memory.limit_in_bytes`,
      version: 1,
    });
    const lim = detectMemoryLimit(probe);
    assertEquals(lim, {
      bytes: 4 * GiB,
      source: "cgroup v1",
      available: 24095832 * 1024,
      total: 24683656 * 1024,
      cgroupLimit: 4 * GiB,
      cgroupFile: `${root}/${cg}/bench/memory.limit_in_bytes`,
    });
  });
  // a limit on an ancestor, and one only in memory.stat's hierarchical_memory_limit
  withTree({
    "proc/meminfo": MEMINFO,
    "proc/self/cgroup": "4:cpuacct,memory:/a/b\n",
    "sys/fs/cgroup/memory/a/memory.limit_in_bytes": "3221225472\n",
    "sys/fs/cgroup/memory/a/b/memory.limit_in_bytes": UNLIMITED_V1,
    "sys/fs/cgroup/memory/a/b/memory.stat": "cache 0\nhierarchical_memory_limit 2147483648\n",
  }, (root) => {
    const lim = detectMemoryLimit({
      procRoot: `${root}/proc`,
      sysRoot: `${root}/sys`,
      platform: "linux",
    });
    assertEquals([lim.bytes, lim.source], [2 * GiB, "cgroup v1"]);
    assert(lim.cgroupFile!.endsWith("/a/b/memory.stat"));
  });
  // unlimited everywhere: MemAvailable decides
  withTree({
    "proc/meminfo": MEMINFO,
    "proc/self/mounts": V1_MOUNTS,
    "proc/self/cgroup": "4:memory:/x\n0::/\n",
    "sys/fs/cgroup/memory/x/memory.limit_in_bytes": UNLIMITED_V1,
  }, (root) => {
    const lim = detectMemoryLimit({
      procRoot: `${root}/proc`,
      sysRoot: `${root}/sys`,
      platform: "linux",
    });
    assertEquals([lim.bytes, lim.source, lim.cgroupLimit], [24095832 * 1024, "meminfo", null]);
  });
});

Deno.test("cgroup v2: memory.max of the cgroup or an ancestor; containers see their root", () => {
  withTree({
    "proc/meminfo": MEMINFO,
    "proc/self/mounts": "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n",
    "proc/self/cgroup": "0::/user.slice/app.scope\n",
    "sys/fs/cgroup/user.slice/app.scope/memory.max": "max\n",
    "sys/fs/cgroup/user.slice/memory.max": "6442450944\n",
  }, (root) => {
    const lim = detectMemoryLimit({
      procRoot: `${root}/proc`,
      sysRoot: `${root}/sys`,
      platform: "linux",
    });
    assertEquals([lim.bytes, lim.source], [6 * GiB, "cgroup v2"]);
    assertEquals(lim.cgroupFile, `${root}/sys/fs/cgroup/user.slice/memory.max`);
  });
  // in a container: /proc/self/cgroup names a host path that is not under the mount,
  // whose root is the container's own cgroup
  withTree({
    "proc/meminfo": MEMINFO,
    "proc/self/cgroup": "0::/system.slice/docker-abc.scope\n",
    "sys/fs/cgroup/memory.max": "2147483648\n",
  }, (root) => {
    const lim = detectMemoryLimit({
      procRoot: `${root}/proc`,
      sysRoot: `${root}/sys`,
      platform: "linux",
    });
    assertEquals([lim.bytes, lim.source], [2 * GiB, "cgroup v2"]);
  });
  // a limit above MemAvailable does not raise it
  withTree({
    "proc/meminfo": "MemTotal: 4194304 kB\nMemAvailable: 1048576 kB\n",
    "proc/self/cgroup": "0::/\n",
    "sys/fs/cgroup/memory.max": "4294967296\n",
  }, (root) => {
    const lim = detectMemoryLimit({
      procRoot: `${root}/proc`,
      sysRoot: `${root}/sys`,
      platform: "linux",
    });
    assertEquals([lim.bytes, lim.source, lim.cgroupLimit], [GiB, "meminfo", 4 * GiB]);
  });
});

Deno.test("macOS: os totals, free memory raised to 60% of total", () => {
  const os = { totalmem: () => 16 * GiB, freemem: () => GiB };
  const lim = detectMemoryLimit({ platform: "darwin", os });
  assertEquals(lim, {
    bytes: Math.floor(16 * GiB * 0.6),
    source: "os",
    available: Math.floor(16 * GiB * 0.6),
    total: 16 * GiB,
    cgroupLimit: null,
    cgroupFile: null,
  });
  const roomy = detectMemoryLimit({
    platform: "darwin",
    os: { totalmem: () => 16 * GiB, freemem: () => 12 * GiB },
  });
  assertEquals(roomy.bytes, 12 * GiB);
});

Deno.test("this machine: a positive limit no larger than MemAvailable", () => {
  const lim = detectMemoryLimit();
  assert(lim.bytes > 0 && lim.bytes <= lim.available, JSON.stringify(lim));
  console.log(`detected ${formatSize(lim.bytes)} (${lim.source})`);
});

/**
 * The qwen3moe shape of DESIGN.md §6: 24 layers × 128 experts, Q4_K_M, 9.5 GB; one expert
 * (gate + up + down) 2,861,056 bytes; KV for 4096 tokens in f16 (24 × 2 × 512 × 4096 × 2).
 */
const QWEN: BudgetInput = {
  fileBytes: 9_500_000_000,
  denseBytes: 710_000_000,
  expertBytes: 2_861_056 * 24 * 128,
  bytesPerExpert: 2_861_056,
  kvBytes: 24 * 2 * 512 * 4096 * 2,
  overheadBytes: 300_000_000,
  expertsPerToken: 8,
};

function limitOf(bytes: number, source: MemoryLimit["source"] = "meminfo"): MemoryLimit {
  return { bytes, source, available: bytes, total: bytes, cgroupLimit: null, cgroupFile: null };
}

Deno.test("planBudget: a model that fits is mapped", () => {
  const p = planBudget({ ...QWEN, ramBudget: "auto", limit: limitOf(32 * GiB) });
  assertEquals([p.mode, p.expertCacheBytes, p.slots], ["mapped", 0, 0]);
  assert(/fits in 85% of 32 GiB \(MemAvailable\)/.test(p.reason), p.reason);
  // the 85% line: 9.5e9 + 201326592 + 3e8 = 10001326592 bytes needs a limit of 11.77e9
  const need = QWEN.fileBytes + QWEN.kvBytes + QWEN.overheadBytes;
  assertEquals(planBudget({ ...QWEN, ramBudget: Math.ceil(need / 0.85) }).mode, "mapped");
  assertEquals(planBudget({ ...QWEN, ramBudget: Math.ceil(need / 0.85) - 2 }).mode, "cache");
});

Deno.test("planBudget: a 4 GiB cap on the 9.5 GB model gives a 2.65 GB cache of 919 slots", () => {
  const slotBytes = defaultSlotBytes(2_861_056);
  assertEquals(slotBytes, 699 * 4096 + 3 * 8192); // 2,887,680
  const base = 710_000_000 + 201_326_592 + 300_000_000; // 1,211,326,592
  // floor(4 GiB × 0.9) − base = 3,865,470,566 − 1,211,326,592 = 2,654,143,974 → 919 slots
  const p = planBudget({ ...QWEN, ramBudget: parseSize("4G") as number });
  assertEquals(p.mode, "cache");
  assertEquals(p.baseBytes, base);
  assertEquals(p.slotBytes, 2_887_680);
  assertEquals(p.slots, 919);
  assertEquals(p.expertCacheBytes, 919 * 2_887_680); // 2,653,777,920
  assertEquals(p.minimumBytes, Math.ceil((base + 16 * slotBytes) / 0.9)); // 1,397,254,969
  assertEquals(p.budgetSource, "--ram-budget");
  assert(/\(919 slots\)/.test(p.reason), p.reason);
  // the same cap found by detection (cgroup v1, DESIGN.md §7)
  const q = planBudget({ ...QWEN, limit: limitOf(4 * GiB, "cgroup v1") });
  assertEquals([q.mode, q.slots, q.budgetSource], ["cache", 919, "cgroup v1 limit"]);
  // room for more than every expert: capped at all 3072
  const r = planBudget({ ...QWEN, ramBudget: 11_500_000_000 });
  assertEquals([r.mode, r.slots], ["cache", 3072]);
});

Deno.test("planBudget: too small a budget is a BudgetError that states the minimum", () => {
  throws(() => planBudget({ ...QWEN, ramBudget: parseSize("1G") as number }), (e: unknown) => {
    assert(e instanceof BudgetError, String(e));
    assertEquals(e.budgetBytes, GiB);
    assertEquals(e.neededBytes, 1_211_326_592);
    assertEquals(e.minimumBytes, 1_397_254_969);
    assertEquals(
      e.message,
      "--ram-budget 1 GiB is below the 1.13 GiB this model needs for its dense weights " +
        "(677.1 MiB), KV cache (192 MiB) and runtime (286.1 MiB) plus 16 expert slots of " +
        "2.8 MiB, with 10% headroom; the minimum is 1.3 GiB.",
    );
    return true;
  });
  throws(
    () => planBudget({ ...QWEN, limit: limitOf(GiB, "cgroup v2") }),
    /The memory available, 1 GiB \(cgroup v2 limit\), is below the 1.13 GiB/,
  );
  // just at the minimum: a cache of at least 16 slots
  const p = planBudget({ ...QWEN, ramBudget: 1_397_254_969 });
  assertEquals([p.mode, p.slots], ["cache", 16]);
});

Deno.test("planBudget: recurrent state and its checkpoints are charged like KV", () => {
  const state = 5 * 66 * 1024 * 1024; // one sequence's 66 MiB plus 4 checkpoint copies
  const plain = planBudget({ ...QWEN, ramBudget: 4 * GiB });
  const hybrid = planBudget({ ...QWEN, ramBudget: 4 * GiB, stateBytes: state });
  assertEquals(hybrid.baseBytes, plain.baseBytes + state);
  // the cache gives up the state's bytes (whole slots)
  assertEquals(
    hybrid.slots,
    Math.floor((Math.floor(4 * GiB * 0.9) - plain.baseBytes - state) / 2_887_680),
  );
  assert(hybrid.slots < plain.slots);
  throws(
    () => planBudget({ ...QWEN, ramBudget: 1_397_254_969, stateBytes: state }),
    (e: unknown) => {
      assert(e instanceof BudgetError);
      assert(
        /KV cache \(192 MiB\), recurrent state and checkpoints \(330 MiB\) and runtime/.test(
          e.message,
        ),
        e.message,
      );
      return true;
    },
  );
  // a model that would be mapped without the state is paged with it
  const file = Math.floor(4 * GiB * 0.85) - QWEN.kvBytes - QWEN.overheadBytes - 1000;
  assertEquals(planBudget({ ...QWEN, fileBytes: file, ramBudget: 4 * GiB }).mode, "mapped");
  assertEquals(
    planBudget({ ...QWEN, fileBytes: file, ramBudget: 4 * GiB, stateBytes: state }).mode,
    "cache",
  );
});

Deno.test("planBudget: an explicit --expert-cache", () => {
  const p = planBudget({ ...QWEN, ramBudget: 4 * GiB, expertCache: GiB });
  assertEquals([p.mode, p.slots, p.expertCacheBytes], ["cache", 371, 371 * 2_887_680]);
  throws(
    () => planBudget({ ...QWEN, ramBudget: 4 * GiB, expertCache: 3 * GiB }),
    /--expert-cache 3 GiB does not fit --ram-budget 4 GiB: dense weights, KV cache and runtime take 1.13 GiB, leaving at most 2.47 GiB for the cache\./,
  );
  throws(
    () => planBudget({ ...QWEN, expertCache: 10_000_000 }),
    /--expert-cache 9.5 MiB holds fewer than the 16 slots of 2.8 MiB one step needs; the minimum is 44.1 MiB\./,
  );
  // an explicit cache even where the model would fit mapped (no budget given: not checked)
  const q = planBudget({ ...QWEN, expertCache: 100 * GiB, limit: limitOf(64 * GiB) });
  assertEquals([q.mode, q.slots], ["cache", 3072]);
});
