/**
 * `spool pull`: download a GGUF file from a Hugging Face-style hub.
 *
 * - URL: `{base}/{owner}/{repo}/resolve/{revision}/{file}` (base default
 *   `https://huggingface.co`; any mirror with the same layout works). Without a file name the
 *   repository's files are listed with `{base}/api/models/{repo}[/revision/{rev}]` (its
 *   `siblings`) and one GGUF is chosen: the only one, else the only Q4_K_M; otherwise the
 *   error lists the candidates.
 * - Metadata first: a `HEAD` without following redirects, as the Hub answers `resolve` with a
 *   302 to its CDN and puts the LFS file's sha256 in `X-Linked-Etag` and its size in
 *   `X-Linked-Size` on that 302. An `ETag` that is 64 hex digits counts as a sha256 too.
 * - Download into `<dest>.part`, with `<dest>.part.json` recording the URL, expected sha256
 *   and size, and the download response's strong ETag. A later pull resumes with
 *   `Range: bytes=N-` and `If-Range: <etag>`; a 200 instead of 206 (the file changed, or no
 *   range support) starts over. Network failures retry (resuming) `retries` times.
 * - At the end the size and sha256 are checked; on a mismatch the partial file is deleted
 *   and nothing is left at the destination. Success is an atomic rename.
 * - Auth: `HF_TOKEN` (or `opts.token`) as a bearer token, sent only to the hub's own origin,
 *   never printed.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { createProgress, type Progress } from "../progress.ts";

/** Default hub. */
export const DEFAULT_BASE_URL = "https://huggingface.co";

/** Machine-readable reason of a {@link PullError}. */
export type PullErrorCode =
  | "bad_spec"
  | "not_found"
  | "auth"
  | "http"
  | "network"
  | "no_gguf"
  | "ambiguous"
  | "checksum"
  | "size";

/** A failed pull; `hint` says what to do about it. The token never appears in it. */
export class PullError extends Error {
  /** What went wrong. */
  readonly code: PullErrorCode;
  /** A one-line suggestion printed by the CLI. */
  readonly hint?: string;
  constructor(code: PullErrorCode, message: string, hint?: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "PullError";
    this.code = code;
    this.hint = hint;
  }
}

/** A parsed `OWNER/REPO[:FILE]`. */
export interface ModelSpec {
  /** `owner/name`. */
  repo: string;
  /** Path of the file in the repository, when given. */
  file?: string;
}

const REPO_RE = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/**
 * Parse `OWNER/REPO[:FILE]` (also `hf.co/OWNER/REPO...` and `https://huggingface.co/...`
 * prefixes, which are dropped).
 * @throws PullError("bad_spec")
 */
export function parseModelSpec(spec: string): ModelSpec {
  const s = spec.replace(/^(https?:\/\/)?(hf\.co|huggingface\.co)\//, "");
  const i = s.indexOf(":");
  const repo = i < 0 ? s : s.slice(0, i);
  const file = i < 0 ? undefined : s.slice(i + 1);
  if (!REPO_RE.test(repo) || repo.includes("..")) {
    throw new PullError(
      "bad_spec",
      `"${spec}" is not OWNER/REPO[:FILE]`,
      "for example: spool pull Qwen/Qwen3-30B-A3B-GGUF:Qwen3-30B-A3B-Q4_K_M.gguf",
    );
  }
  if (file !== undefined) {
    if (!file || file.startsWith("/") || file.split("/").some((p) => p === ".." || p === "")) {
      throw new PullError("bad_spec", `"${file}" is not a file path inside ${repo}`);
    }
  }
  return { repo, file };
}

/** Options shared by the hub calls. */
export interface HubOptions {
  /** Hub base URL (default {@link DEFAULT_BASE_URL}); no trailing slash needed. */
  baseUrl?: string;
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** Bearer token; default `HF_TOKEN` from the environment. */
  token?: string;
}

function base(o: HubOptions): string {
  return (o.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, "");
}

function token(o: HubOptions): string | undefined {
  return o.token ?? (process.env.HF_TOKEN || process.env.HUGGING_FACE_HUB_TOKEN || undefined);
}

function encodePath(p: string): string {
  return p.split("/").map(encodeURIComponent).join("/");
}

/** The download URL of a file: `{base}/{repo}/resolve/{rev}/{file}`. */
export function resolveUrl(repo: string, file: string, o: HubOptions = {}): string {
  const rev = encodeURIComponent(o.revision ?? "main");
  return `${base(o)}/${repo}/resolve/${rev}/${encodePath(file)}`;
}

function authHeaders(url: string, o: HubOptions): Record<string, string> {
  const t = token(o);
  // Only the hub's own origin gets the token, never a CDN it redirects to.
  if (!t || new URL(url).origin !== new URL(base(o)).origin) return {};
  return { authorization: `Bearer ${t}` };
}

async function request(url: string, init: RequestInit, what: string): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    const origin = new URL(url).origin;
    throw new PullError(
      "network",
      `Cannot ${what} from ${origin}: ${(e as Error).message}`,
      "check the network (or --base-url for a mirror); run the same command again to resume",
      e,
    );
  }
}

function httpError(res: Response, url: string, what: string, o: HubOptions): PullError {
  const u = url.replace(/\?.*$/, "");
  if (res.status === 404) {
    return new PullError(
      "not_found",
      `${what}: ${u} was not found (HTTP 404)`,
      "check the repository, file name and --revision; `spool pull OWNER/REPO` lists its GGUF files",
    );
  }
  if (res.status === 401 || res.status === 403) {
    return new PullError(
      "auth",
      `${what}: ${u} needs authorization (HTTP ${res.status})`,
      token(o)
        ? "the HF_TOKEN given has no access to this repository (gated? accept its terms on the hub)"
        : "set HF_TOKEN to an access token for this repository",
    );
  }
  return new PullError("http", `${what}: ${u} answered HTTP ${res.status} ${res.statusText}`);
}

/**
 * List the files of a repository through the hub API (`siblings[].rfilename`).
 * @throws PullError
 */
export async function listRepoFiles(repo: string, o: HubOptions = {}): Promise<string[]> {
  const rev = o.revision && o.revision !== "main"
    ? `/revision/${encodeURIComponent(o.revision)}`
    : "";
  const url = `${base(o)}/api/models/${repo}${rev}`;
  const res = await request(url, { headers: authHeaders(url, o) }, "list the repository");
  if (!res.ok) {
    await res.body?.cancel();
    throw httpError(res, url, `Listing ${repo}`, o);
  }
  let json: unknown;
  try {
    json = await res.json();
  } catch (e) {
    throw new PullError("http", `Listing ${repo}: ${url} did not answer JSON`, undefined, e);
  }
  const siblings = (json as { siblings?: { rfilename?: unknown }[] }).siblings;
  if (!Array.isArray(siblings)) {
    throw new PullError("http", `Listing ${repo}: the answer of ${url} has no "siblings" list`);
  }
  return siblings.map((s) => s?.rfilename).filter((f): f is string => typeof f === "string");
}

/**
 * Choose the GGUF file to download from a repository's file list: the only GGUF (vision
 * projectors `mmproj*` and the later shards of split files left out), else the only Q4_K_M.
 * @throws PullError("no_gguf" | "ambiguous") listing the candidates.
 */
export function pickGGUF(files: readonly string[], repo = "the repository"): string {
  const ggufs = files.filter((f) => {
    const name = f.slice(f.lastIndexOf("/") + 1).toLowerCase();
    if (!name.endsWith(".gguf") || name.startsWith("mmproj")) return false;
    const shard = /-(\d{5})-of-\d{5}\.gguf$/.exec(name);
    return !shard || shard[1] === "00001";
  });
  if (ggufs.length === 1) return ggufs[0];
  if (ggufs.length === 0) {
    throw new PullError(
      "no_gguf",
      `${repo} has no GGUF file (${files.length} files)`,
      "spool runs GGUF files; look for a repository whose name ends in -GGUF",
    );
  }
  const q4km = ggufs.filter((f) => /q4_k_m/i.test(f));
  if (q4km.length === 1) return q4km[0];
  const list = q4km.length > 1 ? q4km : ggufs;
  throw new PullError(
    "ambiguous",
    `${repo} has ${list.length} GGUF files${q4km.length > 1 ? " named Q4_K_M" : ""}; ` +
      `pick one:\n  ${list.join("\n  ")}`,
    `spool pull ${repo}:${list[0]}`,
    undefined,
  );
}

/** Options of {@link pullModel}. */
export interface PullOptions extends HubOptions {
  /** Models directory; the file goes to `<dir>/<owner>/<repo>/<file>`. */
  dir: string;
  /** Download again even when the file is already there. */
  force?: boolean;
  /** Automatic resumes after a network failure (default 3). */
  retries?: number;
  /** Seconds to wait before retry n (default `n` seconds). */
  retryDelay?: (attempt: number) => number;
  /** Abort a download that receives nothing for this long (default 60 s). */
  idleTimeoutMs?: number;
  /** Draw a progress bar (default: on a TTY outside CI). */
  progress?: boolean;
  /** Messages for the user (resuming, retrying); default: stderr. */
  log?: (line: string) => void;
}

/** What {@link pullModel} did. */
export interface PullResult {
  /** Repository and file. */
  repo: string;
  file: string;
  /** Final path of the file. */
  path: string;
  /** Its size in bytes. */
  size: number;
  /** Its sha256 (hex), computed while downloading; undefined when already present. */
  sha256?: string;
  /** Whether the server's sha256 was checked (false: it gave none). */
  verified: boolean;
  /** True when the file was already present and nothing was downloaded. */
  alreadyPresent: boolean;
  /** Bytes that came over the network in this call. */
  downloaded: number;
  /** Bytes reused from an earlier partial download. */
  resumedFrom: number;
}

/** What `<dest>.part.json` holds. */
interface PartMeta {
  url: string;
  sha256?: string;
  size?: number;
  etag?: string;
}

/** Remote file metadata from the HEAD request. */
interface RemoteInfo {
  downloadUrl: string;
  sha256?: string;
  size?: number;
}

function sha256Of(tag: string | null): string | undefined {
  if (!tag) return undefined;
  const t = tag.replace(/^W\//, "").replace(/"/g, "").trim().toLowerCase();
  return /^[0-9a-f]{64}$/.test(t) ? t : undefined;
}

function intHeader(v: string | null): number | undefined {
  if (v === null || !/^\d+$/.test(v.trim())) return undefined;
  return Number(v);
}

async function remoteInfo(url: string, o: PullOptions, what: string): Promise<RemoteInfo> {
  let res = await request(
    url,
    { method: "HEAD", redirect: "manual", headers: authHeaders(url, o) },
    "reach the hub",
  );
  let downloadUrl = url;
  const h = res.headers;
  const sha256 = sha256Of(h.get("x-linked-etag")) ?? sha256Of(h.get("etag"));
  let size = intHeader(h.get("x-linked-size"));
  if (res.status >= 300 && res.status < 400) {
    const loc = h.get("location");
    if (!loc) throw new PullError("http", `${what}: redirect without a Location header`);
    downloadUrl = new URL(loc, url).toString();
    // A mirror may redirect to a plain file server: read its size when the hub gave none.
    if (size === undefined) {
      res = await request(downloadUrl, { method: "HEAD" }, "reach the download server");
      if (res.ok) size = intHeader(res.headers.get("content-length"));
    }
    return { downloadUrl, sha256, size };
  }
  if (!res.ok) throw httpError(res, url, what, o);
  return { downloadUrl, sha256, size: size ?? intHeader(h.get("content-length")) };
}

function readMeta(path: string): PartMeta | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as PartMeta;
  } catch {
    return undefined;
  }
}

/** Hash the bytes already in the partial file. */
function hashExisting(path: string, hash: Hash, length: number): void {
  const fd = openSync(path, "r");
  try {
    const buf = new Uint8Array(4 << 20);
    let pos = 0;
    while (pos < length) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, length - pos), pos);
      if (n <= 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
}

/** One download attempt into `part`; returns the bytes received. */
async function attempt(
  remote: RemoteInfo,
  part: string,
  metaPath: string,
  o: PullOptions,
  bar: { current?: Progress; downloaded: number; resumedFrom?: number },
  label: string,
): Promise<Hash> {
  const meta = readMeta(metaPath);
  let offset = existsSync(part) ? statSync(part).size : 0;
  // Resume only a partial file of the same remote file (same sha256, or same URL without one).
  const sameFile = meta !== undefined &&
    (remote.sha256 ? meta.sha256 === remote.sha256 : meta.url === remote.downloadUrl) &&
    (remote.size === undefined || meta.size === remote.size);
  if (!sameFile || (remote.size !== undefined && offset > remote.size)) offset = 0;
  const headers: Record<string, string> = authHeaders(remote.downloadUrl, o);
  if (offset > 0) {
    headers.range = `bytes=${offset}-`;
    if (meta?.etag) headers["if-range"] = meta.etag;
  }
  const ctl = new AbortController();
  const idle = o.idleTimeoutMs ?? 60_000;
  let timer = setTimeout(() => ctl.abort(), idle);
  const res = await request(
    remote.downloadUrl,
    { headers, signal: ctl.signal },
    "download",
  ).catch((e) => {
    clearTimeout(timer);
    throw e;
  });
  if (res.status === 416 && offset > 0) {
    // The partial file is already whole (or longer than the remote one): check it as is.
    clearTimeout(timer);
    await res.body?.cancel();
    const total = /\/(\d+)$/.exec(res.headers.get("content-range") ?? "");
    if (total && Number(total[1]) === offset) {
      const hash = createHash("sha256");
      hashExisting(part, hash, offset);
      bar.resumedFrom ??= offset;
      return hash;
    }
    rmSync(part, { force: true });
    return attempt(remote, part, metaPath, { ...o }, bar, label);
  }
  if (!res.ok) {
    clearTimeout(timer);
    await res.body?.cancel();
    throw httpError(res, remote.downloadUrl, label, o);
  }
  if (res.status === 206) {
    const m = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "");
    if (!m || Number(m[1]) !== offset) {
      clearTimeout(timer);
      await res.body?.cancel();
      throw new PullError(
        "http",
        `${label}: asked for bytes from ${offset}, the server sent ` +
          `"${res.headers.get("content-range")}"`,
      );
    }
  } else offset = 0; // 200: the whole file (changed, or no range support): start over
  const etag = res.headers.get("etag");
  const strongEtag = etag && !etag.startsWith("W/") ? etag : undefined;
  let size = remote.size;
  if (size === undefined) {
    const total = /\/(\d+)$/.exec(res.headers.get("content-range") ?? "");
    const len = intHeader(res.headers.get("content-length"));
    size = total ? Number(total[1]) : len !== undefined ? offset + len : undefined;
  }
  const newMeta: PartMeta = {
    url: remote.downloadUrl,
    sha256: remote.sha256,
    size: remote.size,
    etag: strongEtag,
  };
  writeFileSync(metaPath, JSON.stringify(newMeta));
  const hash = createHash("sha256");
  if (offset > 0) hashExisting(part, hash, offset);
  bar.resumedFrom ??= offset;
  const fd = openSync(part, offset > 0 ? "r+" : "w");
  let pos = offset;
  bar.current ??= createProgress({
    label,
    total: size,
    unit: "bytes",
    start: offset,
    enabled: o.progress,
  });
  bar.current.setTotal(size ?? 0);
  bar.current.update(pos);
  try {
    if (!res.body) throw new PullError("http", `${label}: empty response body`);
    const reader = res.body.getReader();
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      clearTimeout(timer);
      timer = setTimeout(() => ctl.abort(), idle);
      let w = 0;
      while (w < value.length) w += writeSync(fd, value, w, value.length - w, pos + w);
      hash.update(value);
      pos += value.length;
      bar.downloaded += value.length;
      bar.current.update(pos);
    }
  } catch (e) {
    if (e instanceof PullError) throw e;
    const why = ctl.signal.aborted ? `no data for ${idle / 1000} s` : (e as Error).message;
    throw new PullError(
      "network",
      `${label}: the download broke off at ${pos} of ${size ?? "?"} bytes (${why})`,
      "run the same command again to resume",
      e,
    );
  } finally {
    clearTimeout(timer);
    closeSync(fd);
  }
  return hash;
}

/**
 * Download `spec` into the models directory (see the module doc).
 * @throws PullError for every failure; a checksum or size mismatch leaves no file behind.
 */
export async function pullModel(spec: ModelSpec | string, o: PullOptions): Promise<PullResult> {
  const s = typeof spec === "string" ? parseModelSpec(spec) : spec;
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const file = s.file ?? pickGGUF(await listRepoFiles(s.repo, o), s.repo);
  const dest = join(o.dir, s.repo, file);
  const base: Omit<PullResult, "path" | "size" | "verified" | "alreadyPresent"> = {
    repo: s.repo,
    file,
    downloaded: 0,
    resumedFrom: 0,
  };
  if (existsSync(dest) && !o.force) {
    return {
      ...base,
      path: dest,
      size: statSync(dest).size,
      verified: false,
      alreadyPresent: true,
    };
  }
  const label = `${s.repo}:${file}`;
  const remote = await remoteInfo(resolveUrl(s.repo, file, o), o, label);
  mkdirSync(dirname(dest), { recursive: true });
  const part = `${dest}.part`;
  const metaPath = `${dest}.part.json`;
  const retries = o.retries ?? 3;
  const bar: { current?: Progress; downloaded: number; resumedFrom?: number } = { downloaded: 0 };
  for (let n = 0;; n++) {
    try {
      const hash = await attempt(remote, part, metaPath, o, bar, label);
      bar.current?.finish();
      const size = statSync(part).size;
      const discard = () => {
        rmSync(part, { force: true });
        rmSync(metaPath, { force: true });
      };
      if (remote.size !== undefined && size !== remote.size) {
        discard();
        throw new PullError(
          "size",
          `${label}: got ${size} bytes, the server announced ${remote.size}; deleted the download`,
          "run the same command again; if it persists, the mirror serves a different file",
        );
      }
      const sha256 = hash.digest("hex");
      if (remote.sha256 && sha256 !== remote.sha256) {
        discard();
        throw new PullError(
          "checksum",
          `${label}: sha256 mismatch: expected ${remote.sha256}, got ${sha256}; deleted the ` +
            "download",
          "run the same command again; if it persists, the mirror serves a corrupt file",
        );
      }
      renameSync(part, dest);
      rmSync(metaPath, { force: true });
      return {
        ...base,
        path: dest,
        size,
        sha256,
        verified: remote.sha256 !== undefined,
        alreadyPresent: false,
        downloaded: bar.downloaded,
        resumedFrom: bar.resumedFrom ?? 0,
      };
    } catch (e) {
      if (!(e instanceof PullError) || e.code !== "network" || n >= retries) {
        bar.current?.finish();
        throw e;
      }
      const wait = o.retryDelay ? o.retryDelay(n + 1) : n + 1;
      bar.current?.finish();
      bar.current = undefined;
      log(`${e.message}; resuming in ${wait} s (retry ${n + 1} of ${retries})`);
      await new Promise((r) => setTimeout(r, wait * 1000));
    }
  }
}
