/**
 * bpfgate's private apt: Debian packages (kernels, busybox, bpftool, libraries) for
 * amd64 and arm64, resolved and downloaded without touching the system's dpkg
 * architectures, apt lists or apt cache.
 *
 * Invariants:
 * - Everything apt writes lives under `cacheDir('apt')`: its own sources.list, apt.conf,
 *   lists. apt runs only as `apt-get -c <that apt.conf> update` and
 *   `apt-helper -c <that apt.conf> download-file`; the system's apt.conf.d is still read
 *   first (proxies, Check-Valid-Until), and our file then overrides the directories and
 *   clears the system's update hooks. Resolution reads the signed indexes directly.
 * - The mirror comes from the machine's own apt sources or from env
 *   (BPFGATE_DEBIAN_MIRROR, BPFGATE_DEBIAN_SECURITY_MIRROR); no host name is written here.
 * - A suite name means its family: `bookworm` is bookworm + bookworm-updates +
 *   bookworm-security (what an up-to-date bookworm system installs); a `-backports`,
 *   `-updates` or `-security` suite means only itself.
 * - `apt-get update` runs only when the lists are missing, older than a day, made for
 *   other sources, or when forced. A resolution is remembered until the lists change, so a
 *   warm run never starts apt at all.
 * - Every downloaded .deb is verified against the sha256 of the signed index.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { execa, type Options as ExecaOptions } from 'execa';
import { cacheDir } from '../../core/cache.js';
import { InfraError } from '../../core/errors.js';

export type DebArch = 'amd64' | 'arm64';

/** The suites bpfgate's private apt knows. Security suites come from the security mirror. */
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

/** The keyring every bpfgate source is signed-by. */
export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/** Lists older than this are refreshed before a resolution. */
export const LISTS_MAX_AGE_MS = 24 * 60 * 60 * 1000;

// ---------------------------------------------------------------------------------------
// Host tools

/**
 * Runs a host tool through execa without rejecting: callers read exitCode and stderr (or
 * use `assertToolOk`). A tool that is not installed is an InfraError `infra-tool-missing`
 * naming the Debian package that provides it.
 */
export async function runHostTool(
  tool: string,
  args: readonly string[],
  opts: ExecaOptions & { providedBy?: string } = {},
) {
  const { providedBy, ...execaOpts } = opts;
  const result = await execa(tool, args, { ...execaOpts, reject: false, encoding: 'utf8' as const });
  if (result.code === 'ENOENT' && result.exitCode === undefined) {
    throw new InfraError('infra-tool-missing', `${tool} is not installed${providedBy ? ` (apt-get install ${providedBy})` : ''}`, result);
  }
  return result;
}

/** Throws an InfraError with `code` and the tail of stderr when a tool run failed. */
export function assertToolOk(result: { exitCode?: number | undefined; stderr?: unknown; failed?: boolean }, code: string, what: string): void {
  if (!result.failed && result.exitCode === 0) return;
  const stderr = typeof result.stderr === 'string' ? result.stderr : '';
  const tail = stderr.trim().split('\n').slice(-6).join(' | ');
  throw new InfraError(code, `${what} failed (exit ${result.exitCode ?? '?'})${tail ? `: ${tail}` : ''}`);
}

// ---------------------------------------------------------------------------------------
// The machine's apt sources: one-line (sources.list) and deb822 (*.sources)

/** One source entry: the fields bpfgate needs from either format. */
export interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  /** Where it came from, for messages. */
  origin: string;
}

/** Parses the one-line format: `deb [opt=val ...] URI SUITE COMPONENT...`. Bad lines are skipped. */
export function parseOneLineSources(text: string, origin = 'sources.list'): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line.length === 0) continue;
    // Options in brackets may contain spaces ("[ arch=amd64 ]"): drop them as a whole.
    const m = /^(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(line);
    if (!m) continue;
    out.push({
      types: [m[1] ?? 'deb'],
      uris: [m[2] ?? ''],
      suites: [m[3] ?? ''],
      components: (m[4] ?? '').split(/\s+/).filter((c) => c.length > 0),
      origin,
    });
  }
  return out;
}

/** Parses the deb822 format (paragraphs of `Field: value`, continuation lines indented). */
export function parseDeb822Sources(text: string, origin = 'debian.sources'): AptSource[] {
  const out: AptSource[] = [];
  for (const paragraph of deb822Paragraphs(text.split('\n').filter((l) => !l.startsWith('#')).join('\n'))) {
    if ((paragraph.get('enabled') ?? 'yes').toLowerCase() === 'no') continue;
    const words = (field: string) => (paragraph.get(field) ?? '').split(/\s+/).filter((w) => w.length > 0);
    const source = { types: words('types'), uris: words('uris'), suites: words('suites'), components: words('components'), origin };
    if (source.types.length > 0 && source.uris.length > 0 && source.suites.length > 0) out.push(source);
  }
  return out;
}

/** Paragraphs of a deb822 text as field maps (lower-case keys; continuation lines joined). */
export function deb822Paragraphs(text: string): Map<string, string>[] {
  const out: Map<string, string>[] = [];
  for (const block of text.split(/\n[ \t]*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of block.split('\n')) {
      if (line.trim().length === 0) continue;
      if (/^[ \t]/.test(line)) {
        if (last !== undefined) fields.set(last, `${fields.get(last) ?? ''}\n${line.trim()}`);
        continue;
      }
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      last = line.slice(0, colon).trim().toLowerCase();
      fields.set(last, line.slice(colon + 1).trim());
    }
    if (fields.size > 0) out.push(fields);
  }
  return out;
}

const DEBIAN_SUITE =
  /^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldoldstable|oldstable|stable|testing|unstable)([-/](updates|security|backports|proposed-updates|backports-sloppy))?$/;

export interface DebianMirrors {
  /** The main archive: bookworm, trixie, their -updates and -backports. */
  archive: string;
  /** The security archive: the -security suites. */
  security: string;
}

/**
 * The Debian archive and security URIs among a machine's apt sources: the first binary
 * (`deb`) source with a Debian suite, and separately the first with a `-security` suite.
 */
export function mirrorsFromSources(sources: AptSource[]): Partial<DebianMirrors> {
  const found: Partial<DebianMirrors> = {};
  for (const s of sources) {
    if (!s.types.includes('deb')) continue;
    const uri = s.uris.find((u) => /^(https?|file|ftp):/.test(u));
    if (!uri) continue;
    for (const suite of s.suites) {
      const m = DEBIAN_SUITE.exec(suite);
      if (!m) continue;
      if (m[3] === 'security') found.security ??= trimSlash(uri);
      else found.archive ??= trimSlash(uri);
    }
  }
  return found;
}

function trimSlash(uri: string): string {
  return uri.replace(/\/+$/, '');
}

export interface MirrorLookup {
  env?: NodeJS.ProcessEnv;
  /** /etc/apt by default; tests point it elsewhere. */
  etcApt?: string;
}

/**
 * Finds the Debian mirrors: env first, then the machine's apt sources. A security mirror
 * that is neither configured nor in the sources is derived from an archive URI ending in
 * `/debian` (the archive layout Debian mirrors use). Nothing found is an InfraError
 * `infra-download` that says how to configure it.
 */
export async function findDebianMirrors(opts: MirrorLookup = {}): Promise<DebianMirrors> {
  const env = opts.env ?? process.env;
  const etc = opts.etcApt ?? '/etc/apt';
  const sources: AptSource[] = [];
  const mainList = join(etc, 'sources.list');
  if (existsSync(mainList)) sources.push(...parseOneLineSources(await readFile(mainList, 'utf8'), mainList));
  const partsDir = join(etc, 'sources.list.d');
  if (existsSync(partsDir)) {
    for (const name of (await readdir(partsDir)).sort()) {
      const file = join(partsDir, name);
      if (name.endsWith('.list')) sources.push(...parseOneLineSources(await readFile(file, 'utf8'), file));
      else if (name.endsWith('.sources')) sources.push(...parseDeb822Sources(await readFile(file, 'utf8'), file));
    }
  }
  const fromSources = mirrorsFromSources(sources);
  const archive = nonEmpty(env.BPFGATE_DEBIAN_MIRROR) ?? fromSources.archive;
  if (!archive) {
    throw new InfraError(
      'infra-download',
      `no Debian mirror found: none of the apt sources in ${mainList} or ${partsDir}/*.sources names a Debian suite ` +
        '(bookworm, trixie, ...). Set BPFGATE_DEBIAN_MIRROR to a Debian archive URI (and BPFGATE_DEBIAN_SECURITY_MIRROR ' +
        'to its security archive) or add a Debian source to the machine\'s apt configuration.',
    );
  }
  const security =
    nonEmpty(env.BPFGATE_DEBIAN_SECURITY_MIRROR) ??
    fromSources.security ??
    (/\/debian$/.test(trimSlash(archive)) ? `${trimSlash(archive)}-security` : undefined);
  if (!security) {
    throw new InfraError(
      'infra-download',
      `no Debian security mirror found for the archive ${archive}: set BPFGATE_DEBIAN_SECURITY_MIRROR to the URI that serves the -security suites`,
    );
  }
  return { archive: trimSlash(archive), security: trimSlash(security) };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v !== undefined && v.trim().length > 0 ? v.trim() : undefined;
}

// ---------------------------------------------------------------------------------------
// Debian versions and dependency fields

/** dpkg's version order (epoch, upstream, revision; `~` sorts before everything). */
export function compareDebianVersions(a: string, b: string): number {
  const pa = splitVersion(a);
  const pb = splitVersion(b);
  if (pa.epoch !== pb.epoch) return pa.epoch - pb.epoch;
  return verrevcmp(pa.upstream, pb.upstream) || verrevcmp(pa.revision, pb.revision);
}

function splitVersion(v: string): { epoch: number; upstream: string; revision: string } {
  const colon = v.indexOf(':');
  const epoch = colon > 0 ? Number(v.slice(0, colon)) : 0;
  const rest = colon > 0 ? v.slice(colon + 1) : v;
  const dash = rest.lastIndexOf('-');
  return {
    epoch: Number.isFinite(epoch) ? epoch : 0,
    upstream: dash >= 0 ? rest.slice(0, dash) : rest,
    revision: dash >= 0 ? rest.slice(dash + 1) : '',
  };
}

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';

function order(c: string | undefined): number {
  if (c === undefined || isDigit(c)) return 0;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  if (c === '~') return -1;
  return c.charCodeAt(0) + 256;
}

function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const d = order(a[i]) - order(b[j]);
      if (d !== 0) return d;
      i++;
      j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    let firstDiff = 0;
    while (isDigit(a[i]) && isDigit(b[j])) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a[i])) return 1;
    if (isDigit(b[j])) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

export interface Dependency {
  name: string;
  op?: string;
  version?: string;
}

/** A Depends field as a list of alternatives lists: `a (>= 1) | b, c` -> [[a, b], [c]]. */
export function parseDepends(field: string): Dependency[][] {
  return field
    .split(',')
    .map((group) =>
      group
        .split('|')
        .map((alt) => {
          const m = /^\s*([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9-]+)?\s*(?:\(\s*(<<|<=|=|>=|>>)\s*([^)\s]+)\s*\))?/.exec(alt);
          if (!m) return undefined;
          const dep: Dependency = { name: m[1] ?? '' };
          if (m[2] && m[3]) {
            dep.op = m[2];
            dep.version = m[3];
          }
          return dep;
        })
        .filter((d): d is Dependency => d !== undefined),
    )
    .filter((alts) => alts.length > 0);
}

/** The suites a suite name stands for (see the module comment). */
export function suiteFamily(suite: string): string[] {
  if (/-(updates|security|backports|proposed-updates)$/.test(suite)) return [suite];
  return [suite, `${suite}-updates`, `${suite}-security`];
}

// ---------------------------------------------------------------------------------------
// Packages indexes

/** One binary package version as the signed index describes it. */
export interface ResolvedPackage {
  /** The name that was asked for (for kernels, usually a metapackage). */
  requested: string;
  /** The real package that holds the files. */
  package: string;
  version: string;
  debArch: DebArch;
  /** The suite whose index lists this version, e.g. trixie-security. */
  suite: string;
  /** Pool path in the archive. */
  filename: string;
  size: number;
  sha256: string;
  depends: string;
}

interface Stanza {
  package: string;
  version: string;
  architecture: string;
  depends: string;
  filename: string;
  size: number;
  sha256: string;
}

function stanzaFrom(fields: Map<string, string>): Stanza | undefined {
  const pkg = fields.get('package');
  const version = fields.get('version');
  const filename = fields.get('filename');
  const sha256 = fields.get('sha256');
  if (!pkg || !version || !filename || !sha256) return undefined;
  const pre = fields.get('pre-depends');
  const dep = fields.get('depends');
  return {
    package: pkg,
    version,
    architecture: fields.get('architecture') ?? '',
    depends: [pre, dep].filter((d) => d && d.length > 0).join(', '),
    filename,
    size: Number(fields.get('size') ?? '0'),
    sha256,
  };
}

/** Package name -> raw paragraphs, for one Packages file. Paragraphs are parsed on demand. */
class PackagesIndex {
  private readonly raw = new Map<string, string[]>();
  constructor(text: string) {
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf('\n\n', start);
      if (end < 0) end = text.length;
      const block = text.slice(start, end);
      start = end + 2;
      const m = /^Package:\s*(\S+)/m.exec(block);
      if (!m || !m[1]) continue;
      const list = this.raw.get(m[1]);
      if (list) list.push(block);
      else this.raw.set(m[1], [block]);
    }
  }
  get(name: string): Stanza[] {
    return (this.raw.get(name) ?? [])
      .map((block) => deb822Paragraphs(block)[0])
      .map((fields) => (fields ? stanzaFrom(fields) : undefined))
      .filter((s): s is Stanza => s !== undefined);
  }
}

// ---------------------------------------------------------------------------------------
// The private apt

export interface PrivateAptOptions {
  /** Defaults to cacheDir('apt'). */
  root?: string;
  mirrors?: DebianMirrors;
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
  stampAt: number;
  entries: Record<string, ResolvedPackage>;
}

/** The private apt configuration and everything resolved or downloaded through it. */
export class PrivateApt {
  readonly root: string;
  readonly mirrors: DebianMirrors;
  readonly aptConf: string;
  readonly sourcesList: string;
  readonly listsDir: string;
  private readonly onLog: (line: string) => void;
  private readonly indexes = new Map<string, Promise<PackagesIndex>>();
  private updating: Promise<void> | undefined;
  private updatedThisProcess = false;
  private readonly downloads = new Map<string, Promise<string>>();

  private constructor(root: string, mirrors: DebianMirrors, onLog: (line: string) => void) {
    this.root = root;
    this.mirrors = mirrors;
    this.aptConf = join(root, 'apt.conf');
    this.sourcesList = join(root, 'sources.list');
    this.listsDir = join(root, 'lists');
    this.onLog = onLog;
  }

  /** Finds the mirrors and writes the sources list and apt.conf (only when they changed). */
  static async open(opts: PrivateAptOptions = {}): Promise<PrivateApt> {
    const root = opts.root ?? (await cacheDir('apt'));
    const mirrors = opts.mirrors ?? (await findDebianMirrors({ env: opts.env ?? process.env }));
    const apt = new PrivateApt(root, mirrors, opts.onLog ?? (() => {}));
    await apt.writeConfig();
    return apt;
  }

  /** The sources.list text: one line per suite, both arches, the Debian keyring. */
  sourcesText(): string {
    const opts = `[arch=${APT_ARCHES.join(',')} signed-by=${DEBIAN_KEYRING} target=Packages]`;
    return (
      APT_SUITES.map((suite) => {
        const uri = this.mirrorFor(suite);
        return `deb ${opts} ${uri} ${suite} main`;
      }).join('\n') + '\n'
    );
  }

  /** The apt.conf text; read by `apt-get -c`, after the system's configuration. */
  aptConfText(): string {
    const q = (s: string) => `"${s}"`;
    return [
      '// Written by bpfgate: its private apt configuration. Use as: apt-get -c <this file> ...',
      `Dir::Etc::SourceList ${q(this.sourcesList)};`,
      `Dir::Etc::SourceParts ${q('/dev/null')};`,
      `Dir::State::Lists ${q(this.listsDir)};`,
      `Dir::State::status ${q(join(this.root, 'status'))};`,
      `Dir::Cache ${q(join(this.root, 'cache'))};`,
      // No binary caches on disk: 100 MB each, and only `apt-get update` would use them
      // (resolution reads the indexes, downloads go through apt-helper).
      `Dir::Cache::pkgcache ${q('')};`,
      `Dir::Cache::srcpkgcache ${q('')};`,
      '#clear APT::Architectures;',
      `APT::Architectures { ${APT_ARCHES.map((a) => `${q(a)};`).join(' ')} };`,
      `Debug::NoLocking ${q('true')};`,
      // P11: root downloads into a directory _apt cannot read; the warning is harmless.
      `APT::Sandbox::User ${q('root')};`,
      `Acquire::Languages ${q('none')};`,
      // Keep the indexes gzip'd on disk: a third of the size, and node reads gzip natively.
      `Acquire::GzipIndexes ${q('true')};`,
      `Acquire::IndexTargets::deb::Packages::KeepCompressedAs ${q('gz')};`,
      // Fetch the .gz indexes when the archive has them: kept as they come, nothing to recompress.
      '#clear Acquire::CompressionTypes::Order;',
      `Acquire::CompressionTypes::Order { ${q('gz')}; ${q('xz')}; };`,
      // The system's update hooks (appstream, packagekit, update stamps) are not ours to run.
      '#clear APT::Update::Pre-Invoke;',
      '#clear APT::Update::Post-Invoke;',
      '#clear APT::Update::Post-Invoke-Success;',
      '',
    ].join('\n');
  }

  private async writeConfig(): Promise<void> {
    if (!existsSync(DEBIAN_KEYRING)) {
      throw new InfraError('infra-tool-missing', `the Debian archive keyring ${DEBIAN_KEYRING} is missing (apt-get install debian-archive-keyring)`);
    }
    for (const dir of [this.listsDir, join(this.listsDir, 'partial'), join(this.root, 'cache', 'archives', 'partial')]) {
      await mkdir(dir, { recursive: true });
    }
    await writeIfChanged(this.sourcesList, this.sourcesText());
    await writeIfChanged(this.aptConf, this.aptConfText());
    await writeIfChanged(join(this.root, 'status'), '');
  }

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

  /** Whether the lists exist, match the sources and are younger than a day. */
  async listsState(now = Date.now()): Promise<'fresh' | 'stale' | 'missing'> {
    const stamp = await this.readStamp();
    if (!stamp) return 'missing';
    if (stamp.sourcesSha256 !== sha256Text(this.sourcesText())) return 'stale';
    return now - stamp.at > LISTS_MAX_AGE_MS ? 'stale' : 'fresh';
  }

  /**
   * Runs `apt-get update` when the lists are missing or stale (or `force`). When an update
   * of stale lists fails, the old lists are used with a warning; with no lists at all the
   * failure is an InfraError `infra-download`.
   */
  ensureLists(opts: { force?: boolean } = {}): Promise<void> {
    // Set synchronously: every caller that arrives while a check or an update runs shares it.
    this.updating ??= (async () => {
      const state = await this.listsState();
      if (state === 'fresh' && !opts.force) return;
      try {
        await this.update();
      } catch (err) {
        if (state === 'stale' && !opts.force) {
          this.onLog(`warn: apt-get update failed, using the lists from before: ${(err as Error).message}`);
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
    this.onLog('apt-get update (private lists: bookworm, trixie, backports, security; amd64 + arm64)');
    const result = await runHostTool('apt-get', ['-c', this.aptConf, '-q', 'update'], { providedBy: 'apt' });
    assertToolOk(result, 'infra-download', 'apt-get update');
    // apt-get update exits 0 when some index could not be fetched ("W: Failed to fetch ...").
    const failed = String(result.stderr).split('\n').filter((l) => /^(W|E): (Failed to fetch|Some index files failed)/.test(l));
    if (failed.length > 0) throw new InfraError('infra-download', `apt-get update could not fetch every index: ${failed.join(' | ')}`);
    this.indexes.clear();
    this.updatedThisProcess = true;
    await writeFile(this.stampFile(), JSON.stringify({ at: Date.now(), sourcesSha256: sha256Text(this.sourcesText()) } satisfies ListsStamp));
    this.onLog(`apt-get update done in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  }

  /** The parsed Packages index of a suite and arch; read once per process (and after each update). */
  private index(suite: string, debArch: DebArch): Promise<PackagesIndex> {
    const key = `${suite}/${debArch}`;
    let index = this.indexes.get(key);
    if (!index) {
      index = this.readIndex(suite, debArch);
      this.indexes.set(key, index);
      index.catch(() => this.indexes.delete(key));
    }
    return index;
  }

  private async readIndex(suite: string, debArch: DebArch): Promise<PackagesIndex> {
    const suffix = `_dists_${suite}_main_binary-${debArch}_Packages`;
    const names = existsSync(this.listsDir) ? await readdir(this.listsDir) : [];
    const name = names.find((n) => {
      const at = n.indexOf(suffix);
      return at >= 0 && /^(\.(gz|xz|lz4|zst|bz2))?$/.test(n.slice(at + suffix.length));
    });
    // A suite with no index (trixie-updates between point releases can be empty) is an empty index.
    return new PackagesIndex(name ? await readIndexFile(join(this.listsDir, name)) : '');
  }

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

  /** A resolution made from the current, fresh lists, without reading them again. */
  async memoized(name: string, suite: string, debArch: DebArch, version?: string): Promise<ResolvedPackage | undefined> {
    const [stamp, memo] = await Promise.all([this.readStamp(), this.readMemo()]);
    if (!stamp || !memo || memo.stampAt !== stamp.at || (await this.listsState()) !== 'fresh') return undefined;
    return memo.entries[memoKey(name, suite, debArch, version)];
  }

  private memoWrites: Promise<void> = Promise.resolve();

  /**
   * Adds a resolution to the memo file. Writes are chained in this process (so parallel
   * resolutions do not drop each other's entries) and each re-reads the file, keeping
   * entries other processes added.
   */
  private remember(key: string, resolved: ResolvedPackage): Promise<void> {
    const write = async () => {
      const stamp = await this.readStamp();
      if (!stamp) return;
      const memo = await this.readMemo();
      const entries = memo && memo.stampAt === stamp.at ? memo.entries : {};
      entries[key] = resolved;
      // Write-then-rename: concurrent bpfgate processes never see half a file.
      const tmp = `${this.memoFile()}.${process.pid}.${randomBytes(4).toString('hex')}`;
      await writeFile(tmp, JSON.stringify({ stampAt: stamp.at, entries } satisfies ResolutionMemo));
      await rename(tmp, this.memoFile());
    };
    this.memoWrites = this.memoWrites.then(write, write);
    return this.memoWrites;
  }

  /**
   * The newest version of `name` in the suite's family for `debArch` (or exactly
   * `opts.version`). A kernel metapackage (`linux-image-*` depending on another
   * `linux-image-*`) is followed to the real image package. Not found is an InfraError
   * `infra-download` naming the package, the version and the suites searched.
   */
  async resolve(name: string, suite: string, debArch: DebArch, opts: ResolveOptions = {}): Promise<ResolvedPackage> {
    if (!(APT_SUITES as readonly string[]).includes(suite)) {
      throw new InfraError('infra-download', `suite ${suite} is not in bpfgate's apt configuration (known: ${APT_SUITES.join(', ')})`);
    }
    const key = memoKey(name, suite, debArch, opts.version);
    const memo = await this.memoized(name, suite, debArch, opts.version);
    if (memo) return memo;
    if (!opts.offline) await this.ensureLists();
    let resolved: ResolvedPackage;
    try {
      resolved = await this.resolveFromLists(name, suite, debArch, opts.version, name, 0);
    } catch (err) {
      // A package the day-old lists do not have yet: refresh once and try again.
      if (opts.offline || this.updatedThisProcess || opts.version !== undefined) throw err;
      await this.ensureLists({ force: true });
      resolved = await this.resolveFromLists(name, suite, debArch, opts.version, name, 0);
    }
    // Remembered against the lists' stamp: `memoized` only returns it while they are fresh.
    await this.remember(key, resolved);
    return resolved;
  }

  private async resolveFromLists(
    name: string,
    suite: string,
    debArch: DebArch,
    version: string | undefined,
    requested: string,
    depth: number,
  ): Promise<ResolvedPackage> {
    if (!existsSync(this.stampFile())) {
      throw new InfraError('infra-download', `bpfgate's apt lists are missing (${this.listsDir}): run 'bpfgate kernels fetch' with network access`);
    }
    const family = suiteFamily(suite);
    let best: { stanza: Stanza; suite: string } | undefined;
    for (const s of family) {
      for (const stanza of (await this.index(s, debArch)).get(name)) {
        if (version !== undefined && stanza.version !== version) continue;
        if (!best || compareDebianVersions(stanza.version, best.stanza.version) > 0) best = { stanza, suite: s };
      }
    }
    if (!best) {
      const what = version === undefined ? name : `${name} version ${version}`;
      throw new InfraError(
        'infra-download',
        `${what} (${debArch}) is not in the archive's ${family.join(', ')} indexes` +
          (version === undefined ? '' : ': that version is no longer published; update the lock file (bpfgate kernels lock)'),
      );
    }
    const { stanza } = best;
    if (name.startsWith('linux-image-') && depth < 3) {
      const image = parseDepends(stanza.depends)
        .map((alts) => alts[0])
        .find((d): d is Dependency => d !== undefined && d.name.startsWith('linux-image-') && d.name !== name);
      if (image) return this.resolveFromLists(image.name, suite, debArch, image.op === '=' ? image.version : undefined, requested, depth + 1);
    }
    return {
      requested,
      package: stanza.package,
      version: stanza.version,
      debArch,
      suite: best.suite,
      filename: stanza.filename,
      size: stanza.size,
      sha256: stanza.sha256,
      depends: stanza.depends,
    };
  }

  /**
   * The .deb in cacheDir('debs'), downloaded with apt-get when absent and verified
   * against the index sha256 (a mismatch is an InfraError `infra-download`).
   */
  async download(resolved: ResolvedPackage): Promise<string> {
    const [path] = await this.downloadAll([resolved]);
    return path as string;
  }

  /**
   * Downloads several packages; returns their paths in order. One download runs at a
   * time: requests that arrive meanwhile (parallel cells) are queued and fetched together
   * by the next run, and a package already queued or running is never asked for twice.
   */
  async downloadAll(packages: ResolvedPackage[]): Promise<string[]> {
    const debs = await cacheDir('debs');
    const waits = packages.map((p) => {
      let pending = this.downloads.get(p.sha256);
      if (!pending) {
        pending = new Promise<string>((resolve, reject) => this.queue.push({ pkg: p, resolve, reject }));
        this.downloads.set(p.sha256, pending);
        const forget = () => this.downloads.delete(p.sha256);
        pending.then(forget, forget);
      }
      return pending;
    });
    if (!this.draining) this.draining = this.drain(debs).finally(() => (this.draining = undefined));
    return Promise.all(waits);
  }

  private readonly queue: { pkg: ResolvedPackage; resolve: (path: string) => void; reject: (err: unknown) => void }[] = [];
  private draining: Promise<void> | undefined;

  private async drain(debs: string): Promise<void> {
    // Let requests made in the same tick join the first batch.
    await new Promise((r) => setImmediate(r));
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.queue.length);
      try {
        const missing: ResolvedPackage[] = [];
        for (const { pkg } of batch) {
          const target = join(debs, basename(pkg.filename));
          if (!(existsSync(target) && (await sha256File(target)) === pkg.sha256)) missing.push(pkg);
        }
        if (missing.length > 0) await this.fetchDebs(missing, debs);
        for (const { pkg, resolve } of batch) resolve(join(debs, basename(pkg.filename)));
      } catch (err) {
        for (const { reject } of batch) reject(err);
      }
    }
  }

  /**
   * Fetches .debs with apt's own downloader (`apt-helper download-file`: apt's transports,
   * proxies and hash check, without building a package cache over every list), then
   * checks each sha256 again and moves it into place.
   */
  private async fetchDebs(packages: ResolvedPackage[], debs: string): Promise<void> {
    const staging = join(debs, `.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(staging, { recursive: true });
    try {
      const args = ['-c', this.aptConf, 'download-file'];
      for (const p of packages) args.push(`${this.mirrorFor(p.suite)}/${p.filename}`, join(staging, basename(p.filename)), `SHA256:${p.sha256}`);
      const result = await runHostTool(APT_HELPER, args, { providedBy: 'apt' });
      assertToolOk(result, 'infra-download', `downloading ${packages.map((p) => `${p.package} ${p.version}`).join(', ')}`);
      for (const p of packages) {
        const file = join(staging, basename(p.filename));
        const got = existsSync(file) ? await sha256File(file) : 'nothing';
        if (got !== p.sha256) {
          throw new InfraError('infra-download', `${p.package} ${p.version}: sha256 ${got} does not match the archive index (${p.sha256})`);
        }
        await rename(file, join(debs, basename(p.filename)));
      }
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  /** The mirror that serves a suite. */
  mirrorFor(suite: string): string {
    return suite.endsWith('-security') ? this.mirrors.security : this.mirrors.archive;
  }

  /** Whether a package's .deb is already in cacheDir('debs') (by name; `download` checks its sha256). */
  async hasDeb(resolved: ResolvedPackage): Promise<boolean> {
    return existsSync(join(await cacheDir('debs'), basename(resolved.filename)));
  }
}

const APT_HELPER = '/usr/lib/apt/apt-helper';

function memoKey(name: string, suite: string, debArch: DebArch, version?: string): string {
  return `${suite}/${name}:${debArch}${version === undefined ? '' : `=${version}`}`;
}

async function writeIfChanged(path: string, text: string): Promise<void> {
  try {
    if ((await readFile(path, 'utf8')) === text) return;
  } catch {
    // absent: write it
  }
  await writeFile(path, text);
}

async function readIndexFile(path: string): Promise<string> {
  if (path.endsWith('.gz')) return gunzipSync(await readFile(path)).toString('utf8');
  if (!/\.(xz|lz4|zst|bz2)$/.test(path)) return readFile(path, 'utf8');
  // Other compressions (a system config that overrides ours): apt's own helper reads them all.
  const result = await runHostTool(APT_HELPER, ['cat-file', path], { providedBy: 'apt', maxBuffer: 1 << 30 });
  assertToolOk(result, 'infra-download', `apt-helper cat-file ${path}`);
  return String(result.stdout);
}

export function sha256Text(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The sha256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}

// ---------------------------------------------------------------------------------------
// The process-wide instance

let shared: Promise<PrivateApt> | undefined;

/** The private apt of this process (mirrors found once, config written once). */
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
