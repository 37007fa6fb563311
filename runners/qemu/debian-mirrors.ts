/**
 * Where the Debian archive is: read from the machine's own apt sources (one-line
 * sources.list and deb822 *.sources), or from BPFGATE_DEBIAN_MIRROR and
 * BPFGATE_DEBIAN_SECURITY_MIRROR. apt has no command that answers this for another
 * configuration, so the sources are read here; no host name is ever written in code.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InfraError } from '../../core/errors.js';


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
