/**
 * `spool pull` against a local fake hub (test/ship/_hub.ts) serving a real generated GGUF:
 * choosing the file, resuming a cut download with Range/If-Range, sha256 verification,
 * 404s, auth, and `spool list` / model-name resolution over the result.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeSyntheticModel } from "../../runtime/models/synth.ts";
import { parseModelSpec, pickGGUF, PullError, pullModel } from "../../runtime/pull/pull.ts";
import { listModels, ModelNotFoundError, resolveModelPath } from "../../runtime/pull/models_dir.ts";
import { startHub } from "./_hub.ts";

const work = mkdtempSync(join(tmpdir(), "spool-pull-"));
const modelFile = join(work, "src.gguf");
writeSyntheticModel(modelFile, { arch: "qwen3moe", preset: "tiny", types: "Q4_K", seed: 7 });
const MODEL = new Uint8Array(readFileSync(modelFile));
const OTHER = MODEL.slice(0, 4096); // a second "file" (not a valid GGUF; only its bytes matter)
const REPO = "acme/Tiny-MoE-GGUF";
const FILE = "tiny-moe-Q4_K_M.gguf";
const repos = {
  [REPO]: { [FILE]: MODEL, "tiny-moe-Q8_0.gguf": OTHER, "mmproj-f16.gguf": OTHER },
  "acme/two": { "a-Q8_0.gguf": OTHER, "sub/b-Q6_K.gguf": OTHER },
  "acme/gated": { "g.gguf": OTHER },
};

let n = 0;
function freshDir(): string {
  return join(work, `models-${n++}`);
}
const quiet = { progress: false, log: () => {}, retryDelay: () => 0 };

function leftovers(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(e.name);
    }
  };
  walk(dir);
  return out.sort();
}

Deno.test("parseModelSpec and pickGGUF", () => {
  deepEqual(parseModelSpec("a/b"), { repo: "a/b", file: undefined });
  deepEqual(parseModelSpec("hf.co/a/b:x/y.gguf"), { repo: "a/b", file: "x/y.gguf" });
  for (const bad of ["a", "a/b/c", "/a/b", "a/b:../x", "a/b:"]) {
    try {
      parseModelSpec(bad);
      ok(false, bad);
    } catch (e) {
      ok(e instanceof PullError && e.code === "bad_spec", `${bad}: ${e}`);
    }
  }
  equal(pickGGUF(["x-Q8_0.gguf", "x-Q4_K_M.gguf", "README.md"]), "x-Q4_K_M.gguf");
  equal(pickGGUF(["only.gguf", "mmproj-x.gguf"]), "only.gguf");
  equal(
    pickGGUF(["big-Q4_K_M-00001-of-00002.gguf", "big-Q4_K_M-00002-of-00002.gguf"]),
    "big-Q4_K_M-00001-of-00002.gguf",
  );
});

Deno.test("pull: picks the Q4_K_M file, verifies sha256, stores it; list and resolve see it", async () => {
  const hub = startHub(repos);
  const dir = freshDir();
  try {
    const r = await pullModel(REPO, { baseUrl: hub.baseUrl, dir, ...quiet });
    equal(r.file, FILE);
    equal(r.path, join(dir, REPO, FILE));
    equal(r.size, MODEL.length);
    equal(r.verified, true);
    equal(r.downloaded, MODEL.length);
    equal(r.resumedFrom, 0);
    deepEqual(new Uint8Array(readFileSync(r.path)), MODEL);
    deepEqual(leftovers(dir), [FILE]); // no .part, no .part.json
    // The API was asked, then HEAD on resolve (no redirect followed), then GET on the CDN.
    deepEqual(
      hub.seen.map((s) => `${s.server} ${s.method} ${s.path}`),
      [
        `hub GET /api/models/${REPO}`,
        `hub HEAD /${REPO}/resolve/main/${FILE}`,
        `cdn GET /files/${REPO}/${FILE}`,
      ],
    );
    const again = await pullModel(`${REPO}:${FILE}`, { baseUrl: hub.baseUrl, dir, ...quiet });
    equal(again.alreadyPresent, true);
    equal(hub.seen.length, 3);

    const list = listModels(dir);
    equal(list.length, 1);
    equal(list[0].name, `${REPO}/${FILE}`);
    equal(list[0].size, MODEL.length);
    equal(list[0].arch, "qwen3moe");
    equal(list[0].quant, "Q4_K_S"); // general.file_type 14 (all Q4_K)
    equal(resolveModelPath("tiny-moe-Q4_K_M", dir), r.path);
    equal(resolveModelPath(`${REPO}:${FILE}`, dir), r.path);
    equal(resolveModelPath(REPO, dir), r.path);
    equal(resolveModelPath(modelFile, dir), modelFile);
    try {
      resolveModelPath("nothing-like-it", dir);
      ok(false);
    } catch (e) {
      ok(e instanceof ModelNotFoundError, String(e));
      ok(/not in the models directory/.test(e.message), e.message);
    }
  } finally {
    await hub.close();
  }
});

Deno.test("pull: a cut connection leaves a .part; the next pull resumes with Range and verifies", async () => {
  const hub = startHub(repos);
  const dir = freshDir();
  const cut = 100_000;
  try {
    hub.faults.cutAt = cut;
    await rejects(
      pullModel(`${REPO}:${FILE}`, { baseUrl: hub.baseUrl, dir, ...quiet, retries: 0 }),
      (e: Error) => e instanceof PullError && e.code === "network" && /broke off/.test(e.message),
    );
    const part = join(dir, REPO, `${FILE}.part`);
    equal(statSync(part).size, cut);
    ok(!existsSync(join(dir, REPO, FILE)));

    const r = await pullModel(`${REPO}:${FILE}`, { baseUrl: hub.baseUrl, dir, ...quiet });
    equal(r.resumedFrom, cut);
    equal(r.downloaded, MODEL.length - cut);
    equal(r.verified, true);
    deepEqual(new Uint8Array(readFileSync(r.path)), MODEL);
    const last = hub.seen.at(-1)!;
    equal(last.range, `bytes=${cut}-`);
    ok(last.ifRange?.startsWith(`"cdn-`), String(last.ifRange));
    deepEqual(leftovers(dir), [FILE]);
  } finally {
    await hub.close();
  }
});

Deno.test("pull: retries resume by themselves after a cut", async () => {
  const hub = startHub(repos);
  const dir = freshDir();
  const lines: string[] = [];
  try {
    hub.faults.cutAt = 12_345;
    const r = await pullModel(`${REPO}:${FILE}`, {
      baseUrl: hub.baseUrl,
      dir,
      progress: false,
      retryDelay: () => 0,
      log: (l) => lines.push(l),
    });
    equal(r.resumedFrom, 0);
    equal(r.downloaded, MODEL.length);
    deepEqual(new Uint8Array(readFileSync(r.path)), MODEL);
    equal(lines.length, 1);
    ok(/broke off at 12345 of \d+ bytes.*retry 1 of 3/.test(lines[0]), lines[0]);
    deepEqual(hub.seen.filter((s) => s.server === "cdn").map((s) => s.range), [
      null,
      "bytes=12345-",
    ]);
  } finally {
    await hub.close();
  }
});

Deno.test("pull: a wrong checksum fails and leaves nothing behind", async () => {
  const hub = startHub(repos);
  const dir = freshDir();
  try {
    hub.faults.wrongSha = true;
    await rejects(
      pullModel(`${REPO}:${FILE}`, { baseUrl: hub.baseUrl, dir, ...quiet }),
      (e: Error) =>
        e instanceof PullError && e.code === "checksum" &&
        e.message.includes(`expected ${"0".repeat(64)}`) && /deleted/.test(e.message),
    );
    deepEqual(leftovers(dir), []);
  } finally {
    await hub.close();
  }
});

Deno.test("pull: 404s, ambiguity and auth are clear errors", async () => {
  const hub = startHub(repos);
  const dir = freshDir();
  const o = { baseUrl: hub.baseUrl, dir, ...quiet };
  try {
    await rejects(pullModel(`${REPO}:nope.gguf`, o), (e: Error) => {
      ok(e instanceof PullError && e.code === "not_found", String(e));
      ok(e.message.includes("/resolve/main/nope.gguf was not found (HTTP 404)"), e.message);
      return true;
    });
    await rejects(
      pullModel("acme/missing", o),
      (e: Error) =>
        e instanceof PullError && e.code === "not_found" && /Listing acme\/missing/.test(e.message),
    );
    await rejects(pullModel("acme/two", o), (e: Error) => {
      ok(e instanceof PullError && e.code === "ambiguous", String(e));
      ok(e.message.includes("a-Q8_0.gguf") && e.message.includes("sub/b-Q6_K.gguf"), e.message);
      return true;
    });
    hub.faults.token = "hf_test_secret";
    await rejects(pullModel("acme/gated:g.gguf", { ...o, token: "" }), (e: Error) => {
      ok(e instanceof PullError && e.code === "auth", String(e));
      equal((e as PullError).hint, "set HF_TOKEN to an access token for this repository");
      return true;
    });
    await rejects(pullModel("acme/gated:g.gguf", { ...o, token: "wrong_one" }), (e: Error) => {
      ok(e instanceof PullError && e.code === "auth" && !e.message.includes("wrong_one"));
      return true;
    });
    const r = await pullModel("acme/gated:g.gguf", { ...o, token: "hf_test_secret" });
    equal(r.size, OTHER.length);
    // The token went to the hub only, never to the CDN it redirected to.
    const last = hub.seen.slice(-2);
    deepEqual(last.map((s) => [s.server, s.authorization]), [
      ["hub", "Bearer hf_test_secret"],
      ["cdn", null],
    ]);
    deepEqual(leftovers(dir), ["g.gguf"]);
  } finally {
    await hub.close();
  }
});

Deno.test("pull: an unreachable hub is a network error", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await rejects(
    pullModel(`${REPO}:${FILE}`, {
      baseUrl: `http://127.0.0.1:${port}`,
      dir: freshDir(),
      ...quiet,
    }),
    (e: Error) =>
      e instanceof PullError && e.code === "network" && /Cannot reach the hub/.test(e.message),
  );
});

Deno.test({
  name: "pull: cleanup",
  fn: () => rmSync(work, { recursive: true, force: true }),
});
