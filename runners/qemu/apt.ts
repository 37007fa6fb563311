/**
 * bpfgate's private apt: Debian packages (kernels, busybox, bpftool, libraries) for amd64
 * and arm64, resolved and downloaded by Debian's own apt-cache and apt-get, without touching
 * the system's dpkg status, architectures, apt lists or apt cache.
 *
 * Invariants:
 * - A suite name means its family: `bookworm` is bookworm + bookworm-updates +
 *   bookworm-security (what an up-to-date bookworm system installs); a `-backports`,
 *   `-updates` or `-security` suite means only itself. apt picks a candidate across all of
 *   its sources, so each family has its own apt root under `cacheDir('apt', <suite>)`:
 *   sources.list, apt.conf (both arches), lists, an empty status file, the binary cache.
 *   apt only ever runs as `apt-get|apt-cache -c <that apt.conf>`; the system's apt.conf.d is
 *   still read first (proxies, Check-Valid-Until), and ours then overrides the directories,
 *   the pinning and the architectures, and clears the system's update hooks.
 * - apt decides: the candidate and the suite it comes from (`apt-cache policy`), whether the
 *   exact version of a lock exists, the pool file and hash of a version (`apt-cache show
 *   pkg:arch=version`), the download and its index hash (`apt-get download`). bpfgate keeps only what apt cannot know: which
 *   kernel package a label means (a kernel metapackage is followed through its Depends to
 *   the image package) and the sha256 check again as the .deb enters the cache (core/download.ts).
 * - The mirror comes from the machine's own apt sources or from env
 *   (BPFGATE_DEBIAN_MIRROR, BPFGATE_DEBIAN_SECURITY_MIRROR); no host name is written here.
 * - `apt-get update` runs only when a family's lists are missing, older than a day, made for
 *   other sources, or when a package is not found in them (once per process). An update that
 *   fails over existing lists is a warning: the old lists are used.
 * - A resolution is remembered with a signature of the lists it was made from (their names,
 *   sizes and times), so a warm run starts no apt process; the memo holds only apt's answers.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { cacheDir } from '../../core/cache.js';
import { downloadToCache, PermanentDownloadError, sha256File } from '../../core/download.js';
import { InfraError } from '../../core/errors.js';
import { deb822Paragraphs, findDebianMirrors, type DebianMirrors } from './debian-mirrors.js';
import { assertToolOk, runHostTool } from './host-tools.js';

export { sha256File };

export type DebArch = 'amd64' | 'arm64';

/** The suites bpfgate's private apt knows; each is a family (see the module comment). */
export const APT_SUITES = [
  'bookworm',
  'bookworm-updates',
  'bookworm-security',
  'bookworm-backports',
  'trixie',
  'trixie-updates',
  'trixie-security',
] as const;

export const APT_ARCHES: readonly DebArch[] = ['amd64', 'arm64'];

/** apt's native arch in every private configuration (see familyAptConfText). */
const NATIVE_ARCH: DebArch = 'amd64';

/** The keyring every bpfgate source is signed-by. */
export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/** Lists older than this are refreshed before a resolution. */
export const LISTS_MAX_AGE_MS = 24 * 60 * 60 * 1000;

// ---------------------------------------------------------------------------------------
// Suite families: the private configuration texts (pure)

/** The suites a suite name stands for (see the module comment). */
export function suiteFamily(suite: string): string[] {
  if (/-(updates|security|backports|proposed-updates)$/.test(suite)) return [suite];
  return [suite, `${suite}-updates`, `${suite}-security`];
}

/** The mirror that serves a suite: the security archive for `-security`, else the main one. */
export function mirrorFor(suite: string, mirrors: DebianMirrors): string {
  return suite.endsWith('-security') ? mirrors.security : mirrors.archive;
}

/** The sources.list of a family: one line per suite, both arches, the Debian keyring. */
export function familySourcesText(suite: string, mirrors: DebianMirrors): string {
  const opts = `[arch=${APT_ARCHES.join(',')} signed-by=${DEBIAN_KEYRING} target=Packages]`;
  return suiteFamily(suite).map((s) => `deb ${opts} ${mirrorFor(s, mirrors)} ${s} main`).join('\n') + '\n';
}

/** The apt.conf of the family rooted at `root`; read by `apt-get -c`, after the system's configuration. */
export function familyAptConfText(root: string): string {
  const q = (s: string) => `"${s}"`;
  return [
    '// Written by bpfgate: the private apt configuration of one suite family. Use as: apt-get -c <this file> ...',
    `Dir::Etc::SourceList ${q(join(root, 'sources.list'))};`,
    `Dir::Etc::SourceParts ${q('/dev/null')};`,
    // The system's pins and default release would bend the candidate: none here.
    `Dir::Etc::Preferences ${q('/dev/null')};`,
    `Dir::Etc::PreferencesParts ${q('/dev/null')};`,
    `APT::Default-Release ${q('')};`,
    `Dir::State::Lists ${q(join(root, 'lists'))};`,
    `Dir::State::status ${q(join(root, 'status'))};`,
    `Dir::State::extended_states ${q(join(root, 'extended_states'))};`,
    `Dir::Cache ${q(join(root, 'cache'))};`,
    // The binary cache on disk (tens of MB): every apt-cache run after the first maps it in
    // 0.1 s instead of parsing the lists for 2-3 s.
    `Dir::Cache::pkgcache ${q(join(root, 'cache', 'pkgcache.bin'))};`,
    `Dir::Cache::srcpkgcache ${q('')};`,
    // The native arch is fixed, whatever the host: apt-cache policy names a package of it without `:arch`.
    `APT::Architecture ${q(NATIVE_ARCH)};`,
    '#clear APT::Architectures;',
    `APT::Architectures { ${APT_ARCHES.map((a) => `${q(a)};`).join(' ')} };`,
    `Debug::NoLocking ${q('true')};`,
    // Root downloads into a directory _apt cannot read; the sandbox is not ours to set up.
    `APT::Sandbox::User ${q('root')};`,
    `Acquire::Languages ${q('none')};`,
    // gzip'd indexes kept as they come: smaller on disk than plain, quicker to read than xz.
    `Acquire::GzipIndexes ${q('true')};`,
    `Acquire::IndexTargets::deb::Packages::KeepCompressedAs ${q('gz')};`,
    '#clear Acquire::CompressionTypes::Order;',
    `Acquire::CompressionTypes::Order { ${q('gz')}; ${q('xz')}; };`,
    // The system's update hooks (appstream, packagekit, update stamps) are not ours to run.
    '#clear APT::Update::Pre-Invoke;',
    '#clear APT::Update::Post-Invoke;',
    '#clear APT::Update::Post-Invoke-Success;',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------
// Reading apt's answers

/** The fields bpfgate keeps from one stanza of `apt-cache show`. */
interface AptStanza {
  package: string;
  version: string;
  architecture: string;
  depends: string;
  filename: string;
  size: number;
  sha256: string;
}

/** The stanzas `apt-cache show` printed (those without a file or hash are skipped). */
export function readShowOutput(text: string): AptStanza[] {
  const out: AptStanza[] = [];
  for (const f of deb822Paragraphs(text)) {
    const pkg = f.get('package');
    const version = f.get('version');
    const filename = f.get('filename');
    const sha256 = f.get('sha256');
    if (!pkg || !version || !filename || !sha256) continue;
    out.push({
      package: pkg,
      version,
      architecture: f.get('architecture') ?? '',
      depends: [f.get('pre-depends'), f.get('depends')].filter(Boolean).join(', '),
      filename,
      size: Number(f.get('size') ?? 0),
      sha256,
    });
  }
  return out;
}

/**
 * The image package a kernel metapackage stands for: the first `linux-image-*` other than
 * itself among the first alternatives of its Depends, with the version it pins, if any.
 */
export function kernelImageDependency(depends: string, self: string): { name: string; version: string | undefined } | undefined {
  for (const group of depends.split(',')) {
    const m = /^\s*(linux-image-[a-z0-9.+-]+)(?::[a-z0-9-]+)?\s*(?:\(\s*=\s*([^)\s]+)\s*\))?/.exec(group.split('|')[0] ?? '');
    if (m?.[1] && m[1] !== self) return { name: m[1], version: m[2] };
  }
  return undefined;
}

/** What `apt-cache policy` says of one package: its candidate and the suite of each version. */
export interface PolicyAnswer {
  /** The block's header: `name` for the native arch (amd64, see the apt.conf) and arch `all`, else `name:arch`. */
  header: string;
  candidate: string | undefined;
  /** version -> the first suite that lists it. */
  suites: Map<string, string>;
}

/** The blocks of `apt-cache policy` output. */
export function readPolicyOutput(text: string): PolicyAnswer[] {
  const out: PolicyAnswer[] = [];
  let block: PolicyAnswer | undefined;
  let version: string | undefined;
  for (const line of text.split('\n')) {
    const header = /^(\S+):$/.exec(line);
    if (header?.[1]) {
      block = { header: header[1], candidate: undefined, suites: new Map() };
      version = undefined;
      out.push(block);
      continue;
    }
    if (!block) continue;
    const candidate = /^ {2}Candidate: (\S+)$/.exec(line);
    if (candidate?.[1]) block.candidate = candidate[1] === '(none)' ? undefined : candidate[1];
    // `     6.12.118-1 500`, or ` *** 6.12.118-1 500` for an installed version.
    const v = /^ (?:\*\*\*| {3}) (\S+) -?\d+$/.exec(line);
    if (v?.[1]) version = v[1];
    // `        500 http://mirror/debian trixie/main arm64 Packages`
    const source = /^ {8}-?\d+ \S+ ([^/\s]+)\/\S+ \S+ Packages$/.exec(line);
    if (source?.[1] && version !== undefined && !block.suites.has(version)) block.suites.set(version, source[1]);
  }
  return out;
}

/** The file name `apt-get download` gives a package (apt's QuoteString of name, version, arch). */
export function aptDebFileName(pkg: string, version: string, architecture: string): string {
  const quote = (s: string, bad: string) =>
    [...s].map((c) => (bad.includes(c) || c === '%' || c <= ' ' || c >= '\x7f' ? `%${c.charCodeAt(0).toString(16).padStart(2, '0')}` : c)).join('');
  return `${quote(pkg, '_:')}_${quote(version, '_:')}_${quote(architecture, '_:.')}.deb`;
}

// ---------------------------------------------------------------------------------------
// The private apt

/** One binary package version as apt resolved it. */
export interface ResolvedPackage {
  /** The name that was asked for (for kernels, usually a metapackage). */
  requested: string;
  /** The real package that holds the files. */
  package: string;
  version: string;
  debArch: DebArch;
  /** The package's own Architecture (`all` for arch-independent packages). */
  architecture: string;
  /** The suite family that resolved it (the suite that was asked for), e.g. trixie. */
  family: string;
  /** The suite whose index lists this version, e.g. trixie-security. */
  suite: string;
  /** Pool path in the archive. */
  filename: string;
  size: number;
  sha256: string;
}

export interface PrivateAptOptions {
  /** Defaults to cacheDir('apt'); each family lives in a directory of its own below it. */
  root?: string;
  mirrors?: DebianMirrors;
  /** For the mirror lookup and for apt's processes (proxies); defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Progress and warnings, one line each. */
  onLog?: (line: string) => void;
}

export interface ResolveOptions {
  /** An exact version (from a lock file): nothing else is accepted. */
  version?: string;
  /** Never run apt-get update; use the lists as they are (for `kernels list`). */
  offline?: boolean;
}

interface ListsStamp {
  at: number;
  sourcesSha256: string;
}

interface ResolutionMemo {
  /** The signature of the lists the entries were resolved from. */
  lists: string;
  entries: Record<string, ResolvedPackage>;
}

interface Wanted {
  name: string;
  debArch: DebArch;
  version: string | undefined;
}

const spec = (w: Wanted) => `${w.name}:${w.debArch}${w.version === undefined ? '' : `=${w.version}`}`;

/**
 * Collects the calls made within a short window and runs them as one batch: parallel cells
 * and images then cost one apt process instead of one each. `run` returns one result (or
 * Error) per item.
 */
class Batcher<T, R> {
  private queue: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly run: (items: T[]) => Promise<(R | Error)[]>,
    private readonly windowMs = 20,
  ) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.timer ??= setTimeout(() => this.flush(), this.windowMs);
    });
  }

  private flush(): void {
    this.timer = undefined;
    const batch = this.queue.splice(0);
    this.run(batch.map((b) => b.item)).then(
      (results) =>
        batch.forEach((b, i) => {
          const r = results[i];
          if (r instanceof Error) b.reject(r);
          else b.resolve(r as R);
        }),
      (err: unknown) => batch.forEach((b) => b.reject(err)),
    );
  }
}

/** One suite family's apt root: its configuration, lists, resolutions and downloads. */
export class AptFamily {
  readonly suite: string;
  readonly suites: string[];
  readonly root: string;
  readonly aptConf: string;
  readonly listsDir: string;
  private readonly sourcesText: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly onLog: (line: string) => void;
  private prepared: Promise<void> | undefined;
  private updating: Promise<void> | undefined;
  private updatedThisProcess = false;
  private signature: Promise<string> | undefined;
  private readonly resolving = new Map<string, Promise<ResolvedPackage>>();
  private readonly online = new Batcher<Wanted, ResolvedPackage>((w) => this.resolveBatch(w, false));
  private readonly offline = new Batcher<Wanted, ResolvedPackage>((w) => this.resolveBatch(w, true));
  private readonly debs = new Batcher<{ pkg: ResolvedPackage; tempFile: string }, void>((items) => this.downloadBatch(items));
  private memoWrites: Promise<void> = Promise.resolve();

  constructor(suite: string, root: string, mirrors: DebianMirrors, env: NodeJS.ProcessEnv, onLog: (line: string) => void) {
    this.suite = suite;
    this.suites = suiteFamily(suite);
    this.root = root;
    this.aptConf = join(root, 'apt.conf');
    this.listsDir = join(root, 'lists');
    this.sourcesText = familySourcesText(suite, mirrors);
    this.env = env;
    this.onLog = onLog;
  }

  /** Writes the family's configuration (only what changed) and its directories, once. */
  ready(): Promise<void> {
    this.prepared ??= (async () => {
      for (const dir of [join(this.listsDir, 'partial'), join(this.root, 'cache', 'archives', 'partial')]) await mkdir(dir, { recursive: true });
      await writeIfChanged(join(this.root, 'sources.list'), this.sourcesText);
      await writeIfChanged(this.aptConf, familyAptConfText(this.root));
      await writeIfChanged(join(this.root, 'status'), '');
    })();
    this.prepared.catch(() => (this.prepared = undefined));
    return this.prepared;
  }

  private run(tool: 'apt-get' | 'apt-cache', args: readonly string[], opts: { cwd?: string } = {}) {
    // C locale: the few messages read below ("was not found") are apt's English ones.
    return runHostTool(tool, ['-c', this.aptConf, ...args], {
      providedBy: 'apt',
      env: { ...this.env, LC_ALL: 'C' },
      extendEnv: false,
      maxBuffer: 256 * 1024 * 1024,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
  }

  // --- lists ---------------------------------------------------------------------------

  private stampFile(): string {
    return join(this.root, 'lists-stamp.json');
  }

  private async readStamp(): Promise<ListsStamp | undefined> {
    try {
      return JSON.parse(await readFile(this.stampFile(), 'utf8')) as ListsStamp;
    } catch {
      return undefined;
    }
  }

  /** Whether the lists exist, were made for these sources and are younger than a day. */
  async listsState(now = Date.now()): Promise<'fresh' | 'stale' | 'missing'> {
    const stamp = await this.readStamp();
    if (!stamp || !existsSync(this.listsDir)) return 'missing';
    if (stamp.sourcesSha256 !== sha256Text(this.sourcesText)) return 'stale';
    return now - stamp.at > LISTS_MAX_AGE_MS ? 'stale' : 'fresh';
  }

  /**
   * Runs `apt-get update` when the lists are missing or stale (or `force`). When an update
   * over existing lists fails, they are used with a warning; with no lists at all the
   * failure is an InfraError `infra-download`.
   */
  ensureLists(opts: { force?: boolean } = {}): Promise<void> {
    // Set synchronously: every caller that arrives while a check or an update runs shares it.
    this.updating ??= (async () => {
      await this.ready();
      const state = await this.listsState();
      if (state === 'fresh' && !opts.force) return;
      try {
        await this.update();
      } catch (err) {
        if (state !== 'missing') {
          this.onLog(`warn: apt-get update (${this.suites.join(', ')}) failed, using the lists from before: ${(err as Error).message}`);
          return;
        }
        throw err;
      }
    })().finally(() => {
      this.updating = undefined;
    });
    return this.updating;
  }

  private async update(): Promise<void> {
    const started = Date.now();
    this.onLog(`apt-get update (private lists: ${this.suites.join(', ')}; amd64 + arm64)`);
    this.updatedThisProcess = true;
    this.signature = undefined;
    const result = await this.run('apt-get', ['-q', 'update']);
    this.signature = undefined;
    assertToolOk(result, 'infra-download', `apt-get update of ${this.suites.join(', ')}`);
    // apt-get update exits 0 when some index could not be fetched ("W: Failed to fetch ...").
    const failed = String(result.stderr).split('\n').filter((l) => /^(W|E): (Failed to fetch|Some index files failed)/.test(l));
    if (failed.length > 0) throw new InfraError('infra-download', `apt-get update could not fetch every index: ${failed.join(' | ')}`);
    await writeFile(this.stampFile(), JSON.stringify({ at: Date.now(), sourcesSha256: sha256Text(this.sourcesText) } satisfies ListsStamp));
    this.onLog(`apt-get update (${this.suites.join(', ')}) done in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  }

  /** The names, sizes and times of the list files: what a memo entry was resolved from. */
  private listsSignature(): Promise<string> {
    this.signature ??= (async () => {
      const names = existsSync(this.listsDir) ? (await readdir(this.listsDir)).filter((n) => n.includes('_dists_')).sort() : [];
      const parts = await Promise.all(
        names.map(async (n) => {
          const st = await stat(join(this.listsDir, n));
          return `${n} ${st.size} ${st.mtimeMs}`;
        }),
      );
      return sha256Text(parts.join('\n'));
    })();
    return this.signature;
  }

  // --- resolution ----------------------------------------------------------------------

  private memoFile(): string {
    return join(this.root, 'resolutions.json');
  }

  private async readMemo(): Promise<ResolutionMemo | undefined> {
    try {
      return JSON.parse(await readFile(this.memoFile(), 'utf8')) as ResolutionMemo;
    } catch {
      return undefined;
    }
  }

  /** What apt answered for this request from the lists as they are now, if it was asked before. */
  private async fromMemo(key: string): Promise<ResolvedPackage | undefined> {
    const [lists, memo] = await Promise.all([this.listsSignature(), this.readMemo()]);
    return memo?.lists === lists ? memo.entries[key] : undefined;
  }

  /** A resolution made from the current lists while they are fresh, without starting apt. */
  async memoized(name: string, debArch: DebArch, version?: string): Promise<ResolvedPackage | undefined> {
    if ((await this.listsState()) !== 'fresh') return undefined;
    return this.fromMemo(spec({ name, debArch, version }));
  }

  /**
   * Adds resolutions to the memo file. Writes are chained in this process (parallel batches
   * do not drop each other's entries) and each re-reads the file, keeping entries another
   * process added from the same lists.
   */
  private remember(lists: string, entries: [string, ResolvedPackage][]): Promise<void> {
    const write = async () => {
      const memo = await this.readMemo();
      const merged = { ...(memo?.lists === lists ? memo.entries : {}), ...Object.fromEntries(entries) };
      // Write-then-rename: concurrent bpfgate processes never see half a file.
      const tmp = `${this.memoFile()}.${process.pid}.${randomBytes(4).toString('hex')}`;
      await writeFile(tmp, JSON.stringify({ lists, entries: merged } satisfies ResolutionMemo));
      await rename(tmp, this.memoFile());
    };
    this.memoWrites = this.memoWrites.then(write, write);
    return this.memoWrites;
  }

  /** See `PrivateApt.resolve`. */
  async resolve(name: string, debArch: DebArch, opts: ResolveOptions = {}): Promise<ResolvedPackage> {
    await this.ready();
    if (opts.offline) {
      if ((await this.listsState()) === 'missing') {
        throw new InfraError('infra-download', `bpfgate's apt lists of ${this.suite} are missing (${this.listsDir}): run 'bpfgate kernels fetch' with network access`);
      }
    } else {
      await this.ensureLists();
    }
    const wanted: Wanted = { name, debArch, version: opts.version };
    const key = spec(wanted);
    const memo = await this.fromMemo(key);
    if (memo) return memo;
    const inflightKey = `${opts.offline ? 'offline' : 'online'} ${key}`;
    let pending = this.resolving.get(inflightKey);
    if (!pending) {
      pending = (opts.offline ? this.offline : this.online).add(wanted).finally(() => this.resolving.delete(inflightKey));
      this.resolving.set(inflightKey, pending);
    }
    return pending;
  }

  private async resolveBatch(wanted: Wanted[], offline: boolean): Promise<(ResolvedPackage | Error)[]> {
    let lists = await this.listsSignature();
    const results: (ResolvedPackage | Error)[] = await this.lookup(wanted);
    const missing = results.flatMap((r, i) => (r instanceof NotInLists ? [i] : []));
    if (missing.length > 0 && !offline && !this.updatedThisProcess) {
      // Day-old lists may not have it yet (or the lock was made from newer ones): refresh once.
      await this.ensureLists({ force: true });
      lists = await this.listsSignature();
      const again = await this.lookup(missing.map((i) => wanted[i] as Wanted));
      missing.forEach((i, j) => (results[i] = again[j] as ResolvedPackage | Error));
    }
    const found = results.flatMap((r, i): [string, ResolvedPackage][] => (r instanceof Error ? [] : [[spec(wanted[i] as Wanted), r]]));
    if (found.length > 0) await this.remember(lists, found);
    return results;
  }

  /**
   * Asks apt, one round per level of kernel metapackage: `apt-cache policy` for the candidate
   * (or to check the exact version) and its suite, then `apt-cache show name:arch=version` for
   * its pool file, size, sha256 and dependencies.
   */
  private async lookup(wanted: Wanted[]): Promise<(ResolvedPackage | Error)[]> {
    const results: (ResolvedPackage | Error)[] = new Array<ResolvedPackage | Error>(wanted.length);
    const current = [...wanted];
    let active = wanted.map((_, i) => i);
    for (let depth = 0; active.length > 0; depth++) {
      const picked = await this.pick(active.map((i) => current[i] as Wanted));
      const shown = await this.showExact(picked.map((p, j) => (p ? { name: (current[active[j] as number] as Wanted).name, ...p } : undefined)));
      const next: number[] = [];
      active.forEach((i, j) => {
        const w = current[i] as Wanted;
        const p = picked[j];
        const stanza = shown[j];
        if (!p || !stanza) {
          results[i] = new NotInLists(w, this.suites);
          return;
        }
        const image = w.name.startsWith('linux-image-') && depth < 3 ? kernelImageDependency(stanza.depends, w.name) : undefined;
        if (image) {
          current[i] = { name: image.name, debArch: w.debArch, version: image.version };
          next.push(i);
          return;
        }
        const asked = wanted[i] as Wanted;
        results[i] = {
          requested: asked.name,
          package: stanza.package,
          version: stanza.version,
          debArch: asked.debArch,
          architecture: stanza.architecture,
          family: this.suite,
          suite: p.suite,
          filename: stanza.filename,
          size: stanza.size,
          sha256: stanza.sha256,
        };
      });
      active = next;
    }
    return results;
  }

  /**
   * The version apt picks for each (its candidate, or the exact version asked for if apt has
   * it) and the suite that lists it. apt files an arch-independent package under `:all`, so
   * what `name:arch` does not find is asked again as `name:all`.
   */
  private async pick(wanted: Wanted[]): Promise<({ arch: string; version: string; suite: string } | undefined)[]> {
    const out = await this.policy(wanted.map((w) => ({ name: w.name, arch: w.debArch })));
    const choose = (w: Wanted, answer: PolicyAnswer | undefined, arch: string) => {
      const version = w.version ?? answer?.candidate;
      const suite = version === undefined ? undefined : answer?.suites.get(version);
      return version !== undefined && suite !== undefined ? { arch, version, suite } : undefined;
    };
    const picked = wanted.map((w, i) => choose(w, out[i], w.debArch));
    const retry = picked.flatMap((p, i) => (p ? [] : [i]));
    if (retry.length > 0) {
      const again = await this.policy(retry.map((i) => ({ name: (wanted[i] as Wanted).name, arch: 'all' })));
      retry.forEach((i, j) => (picked[i] = choose(wanted[i] as Wanted, again[j], 'all')));
    }
    return picked;
  }

  /** `apt-cache policy` of each `name:arch`, matched to its block by header (absent: apt knows no such package). */
  private async policy(items: { name: string; arch: string }[]): Promise<(PolicyAnswer | undefined)[]> {
    const headerOf = (it: { name: string; arch: string }) => (it.arch === NATIVE_ARCH || it.arch === 'all' ? it.name : `${it.name}:${it.arch}`);
    const headers = [...new Set(items.map(headerOf))];
    // Two requests that share a header (name:amd64 and name:all) would be indistinguishable: never in one call.
    const specs = [...new Set(items.map((it) => `${it.name}:${it.arch}`))];
    if (specs.length > headers.length) {
      const firsts = new Map(items.map((it) => [headerOf(it), it] as const));
      const rest = items.filter((it) => firsts.get(headerOf(it)) !== it);
      const [a, b] = await Promise.all([this.policy([...firsts.values()]), this.policy(rest)]);
      const answers = new Map<string, PolicyAnswer | undefined>();
      [...firsts.values()].forEach((it, i) => answers.set(`${it.name}:${it.arch}`, a[i]));
      rest.forEach((it, i) => answers.set(`${it.name}:${it.arch}`, b[i]));
      return items.map((it) => answers.get(`${it.name}:${it.arch}`));
    }
    if (specs.length === 0) return [];
    const result = await this.run('apt-cache', ['policy', ...specs]);
    assertToolOk(result, 'infra-download', `apt-cache policy (${this.suite})`);
    const blocks = new Map(readPolicyOutput(String(result.stdout)).map((b) => [b.header, b] as const));
    return items.map((it) => blocks.get(headerOf(it)));
  }

  /** `apt-cache show name:arch=version` of each (undefined where apt printed no such stanza). */
  private async showExact(items: ({ name: string; arch: string; version: string } | undefined)[]): Promise<(AptStanza | undefined)[]> {
    const specs = [...new Set(items.flatMap((it) => (it ? [`${it.name}:${it.arch}=${it.version}`] : [])))];
    if (specs.length === 0) return items.map(() => undefined);
    const result = await this.run('apt-cache', ['show', ...specs]);
    assertToolOk(result, 'infra-download', `apt-cache show (${this.suite})`);
    const stanzas = readShowOutput(String(result.stdout));
    return items.map((it) =>
      it ? stanzas.find((s) => s.package === it.name && s.version === it.version && (s.architecture === it.arch || s.architecture === 'all')) : undefined,
    );
  }

  // --- downloads -----------------------------------------------------------------------

  /** A transport for core/download.ts: `apt-get download pkg:arch=version`, the .deb moved to `tempFile`. */
  fetchDeb(pkg: ResolvedPackage, tempFile: string): Promise<void> {
    return this.debs.add({ pkg, tempFile });
  }

  /** One `apt-get download` for a batch, in a staging directory beside the cache files. */
  private async downloadBatch(items: { pkg: ResolvedPackage; tempFile: string }[]): Promise<(void | Error)[]> {
    const first = items[0];
    if (!first) return [];
    await this.ready();
    const staging = join(dirname(first.tempFile), `.apt-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(staging, { recursive: true });
    try {
      const specs = [...new Set(items.map(({ pkg }) => `${pkg.package}:${pkg.architecture === 'all' ? 'all' : pkg.debArch}=${pkg.version}`))];
      // Retries are core/download.ts's: one policy, with its backoff, for every transport.
      const result = await this.run('apt-get', ['-q', '-o', 'Acquire::Retries=0', 'download', ...specs], { cwd: staging });
      if (result.exitCode !== 0) {
        const stderr = String(result.stderr).trim().split('\n');
        const lines = stderr.filter((l) => /^(E|W): /.test(l));
        const message = `apt-get download failed (exit ${result.exitCode ?? '?'}): ${(lines.length > 0 ? lines : stderr).slice(-4).join(' | ')}`;
        // A version or package apt does not know, or a file the mirror no longer has, will not appear by trying again.
        const permanent = lines.some((l) => /was not found|Unable to locate|404\s+Not Found/.test(l));
        const err = permanent ? new PermanentDownloadError(`${message}; a lock file that names this version needs 'bpfgate kernels lock'`) : new Error(message);
        return items.map(() => err);
      }
      const left = await readdir(staging);
      return await Promise.all(
        items.map(async ({ pkg, tempFile }) => {
          const name = aptDebFileName(pkg.package, pkg.version, pkg.architecture);
          const file = left.includes(name) ? name : items.length === 1 && left.length === 1 ? left[0] : undefined;
          if (!file) return new Error(`apt-get download left no ${name} (found: ${left.join(', ') || 'nothing'})`);
          await rename(join(staging, file), tempFile);
          return undefined;
        }),
      );
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }
}

/** A package or version the family's lists do not have. */
class NotInLists extends InfraError {
  constructor(w: Wanted, suites: string[]) {
    const what = w.version === undefined ? w.name : `${w.name} version ${w.version}`;
    super(
      'infra-download',
      `${what} (${w.debArch}) is not in the archive's ${suites.join(', ')} indexes` +
        (w.version === undefined ? '' : ': that version is no longer published; update the lock file (bpfgate kernels lock)'),
    );
  }
}

/** The private apt: one family per suite asked for, the mirrors found once. */
export class PrivateApt {
  readonly root: string;
  readonly mirrors: DebianMirrors;
  private readonly env: NodeJS.ProcessEnv;
  private readonly onLog: (line: string) => void;
  private readonly families = new Map<string, AptFamily>();

  private constructor(root: string, mirrors: DebianMirrors, env: NodeJS.ProcessEnv, onLog: (line: string) => void) {
    this.root = root;
    this.mirrors = mirrors;
    this.env = env;
    this.onLog = onLog;
  }

  /** Finds the mirrors and checks the keyring; each family writes its configuration when first used. */
  static async open(opts: PrivateAptOptions = {}): Promise<PrivateApt> {
    const env = opts.env ?? process.env;
    const root = opts.root ?? (await cacheDir('apt'));
    const mirrors = opts.mirrors ?? (await findDebianMirrors({ env }));
    if (!existsSync(DEBIAN_KEYRING)) {
      throw new InfraError('infra-tool-missing', `the Debian archive keyring ${DEBIAN_KEYRING} is missing (apt-get install debian-archive-keyring)`);
    }
    return new PrivateApt(root, mirrors, env, opts.onLog ?? (() => {}));
  }

  /** The family of a suite; a suite outside APT_SUITES is an InfraError `infra-download`. */
  family(suite: string): AptFamily {
    let family = this.families.get(suite);
    if (!family) {
      if (!(APT_SUITES as readonly string[]).includes(suite)) {
        throw new InfraError('infra-download', `suite ${suite} is not in bpfgate's apt configuration (known: ${APT_SUITES.join(', ')})`);
      }
      family = new AptFamily(suite, join(this.root, suite), this.mirrors, this.env, this.onLog);
      this.families.set(suite, family);
    }
    return family;
  }

  /**
   * The newest version of `name` for `debArch` in the suite's family, as apt picks it (or
   * exactly `opts.version`). A kernel metapackage (`linux-image-*` depending on another
   * `linux-image-*`) is followed to the real image package. Not found is an InfraError
   * `infra-download` naming the package, the version and the suites searched.
   */
  async resolve(name: string, suite: string, debArch: DebArch, opts: ResolveOptions = {}): Promise<ResolvedPackage> {
    return this.family(suite).resolve(name, debArch, opts);
  }

  /** A resolution made from the suite family's current, fresh lists, found without starting apt. */
  async memoized(name: string, suite: string, debArch: DebArch, version?: string): Promise<ResolvedPackage | undefined> {
    if (!(APT_SUITES as readonly string[]).includes(suite)) return undefined;
    return this.family(suite).memoized(name, debArch, version);
  }

  /** Whether the family's lists exist, match the sources and are younger than a day. */
  listsState(suite: string, now = Date.now()): Promise<'fresh' | 'stale' | 'missing'> {
    return this.family(suite).listsState(now);
  }

  /** Runs `apt-get update` for the suite's family when needed (see `AptFamily.ensureLists`). */
  ensureLists(suite: string, opts: { force?: boolean } = {}): Promise<void> {
    return this.family(suite).ensureLists(opts);
  }

  /**
   * The .deb in cacheDir('debs'): apt-get downloads it (apt checks the index hash), and
   * core/download.ts checks the sha256 again as it moves it into the cache. Parallel
   * requests of one family share an apt-get run; the same package is fetched once.
   */
  async download(pkg: ResolvedPackage): Promise<string> {
    const family = this.family(pkg.family);
    return downloadToCache({
      dir: await cacheDir('debs'),
      name: basename(pkg.filename),
      what: `${pkg.package} ${pkg.version} (${pkg.debArch})`,
      sha256: pkg.sha256,
      transport: (tempFile) => family.fetchDeb(pkg, tempFile),
      onLog: this.onLog,
    });
  }

  /** Downloads several packages (see `download`); returns their paths in order. */
  downloadAll(packages: ResolvedPackage[]): Promise<string[]> {
    return Promise.all(packages.map((p) => this.download(p)));
  }

  /** Whether a package's .deb is already in cacheDir('debs') (by name; `download` checks its sha256). */
  async hasDeb(pkg: ResolvedPackage): Promise<boolean> {
    return existsSync(join(await cacheDir('debs'), basename(pkg.filename)));
  }
}

async function writeIfChanged(path: string, text: string): Promise<void> {
  try {
    if ((await readFile(path, 'utf8')) === text) return;
  } catch {
    // absent: write it
  }
  await writeFile(path, text);
}

export function sha256Text(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

// ---------------------------------------------------------------------------------------
// The process-wide instance

let shared: Promise<PrivateApt> | undefined;

/** The private apt of this process (mirrors found once). */
export function privateApt(opts: PrivateAptOptions = {}): Promise<PrivateApt> {
  if (!shared) {
    shared = PrivateApt.open(opts);
    shared.catch(() => {
      shared = undefined;
    });
  }
  return shared;
}

/** Resolves a package (see `PrivateApt.resolve`) through the process-wide private apt. */
export async function resolvePackage(name: string, suite: string, debArch: DebArch, opts: ResolveOptions = {}): Promise<ResolvedPackage> {
  return (await privateApt()).resolve(name, suite, debArch, opts);
}

/** Downloads a resolved package into cacheDir('debs') and returns its verified path. */
export async function downloadPackage(resolved: ResolvedPackage): Promise<string> {
  return (await privateApt()).download(resolved);
}
