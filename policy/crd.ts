/**
 * Where the TracingPolicy schema comes from: Tetragon's CustomResourceDefinitions, given as a
 * CRD YAML file, a directory of them, or a URL (downloaded once, then read from the cache,
 * keyed by the sha256 of the URL). From each cilium.io CRD the served v1alpha1 version's
 * `openAPIV3Schema` is kept, keyed by the CRD's `spec.names.kind`.
 *
 * Invariants: no URL is built in; a download failure is an InfraError (`infra-download`);
 * a source that holds no usable cilium.io CRD is an InputError naming the file.
 */
import { createHash } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { cacheDir } from '../core/cache.js';
import { downloadToCache, httpTransport } from '../core/download.js';
import { InputError } from '../core/errors.js';
import { readInputText } from '../core/yaml-input.js';
import { collectPolicyFiles, parseDocuments } from './load.js';

export const CRD_GROUP = 'cilium.io';
export const CRD_VERSION = 'v1alpha1';

/** The schema of one custom resource kind. */
export interface CrdSchema {
  kind: string;
  group: string;
  version: string;
  /** `spec.versions[name=v1alpha1].schema.openAPIV3Schema`, as written in the CRD. */
  openAPIV3Schema: Record<string, unknown>;
  /** The file the CRD was read from (for a URL: the cached copy). */
  file: string;
}

export interface CrdSet {
  /** What the user gave: a path or a URL. */
  source: string;
  kinds: Map<string, CrdSchema>;
}

/** Reads the CRDs named by `source` (a file, a directory or an http(s) URL). */
export async function loadCrds(source: string): Promise<CrdSet> {
  if (/^https?:\/\//i.test(source)) {
    const file = await downloadOnce(source);
    // What came back may be an error page: never keep a copy that holds no CRD.
    return crdsFromFiles(source, [file], true).catch(async (error: unknown) => {
      await rm(file, { force: true });
      throw error;
    });
  }
  const info = await stat(source).catch((cause: unknown) => {
    throw new InputError('schema-source-missing', source, {}, 'no such schema file or directory', cause);
  });
  const files = info.isDirectory() ? await collectPolicyFiles([source]) : [source];
  return crdsFromFiles(source, files, !info.isDirectory());
}

async function crdsFromFiles(source: string, files: string[], strict: boolean): Promise<CrdSet> {
  const kinds = new Map<string, CrdSchema>();
  for (const file of files) {
    const text = await readInputText(file, 'schema-source-missing', 'CRD file');
    // CRDs are Kubernetes YAML: the policy reader's dialect and positions.
    for (const doc of parseDocuments(file, text)) {
      if (doc.yamlProblem) {
        const p = doc.yamlProblem;
        throw new InputError('schema-source-invalid', file, p, `CRD file is not valid YAML: ${p.message}`);
      }
      const crd = crdSchemaOf(doc.value, file);
      if (typeof crd === 'string') {
        // In a directory, other CRDs and other objects are simply not ours.
        if (strict) throw new InputError('schema-source-invalid', file, { line: doc.line, column: doc.column }, crd);
        continue;
      }
      kinds.set(crd.kind, crd);
    }
  }
  if (kinds.size === 0) {
    throw new InputError(
      'schema-source-invalid',
      source,
      {},
      `no CustomResourceDefinition of group ${CRD_GROUP} serving ${CRD_VERSION} found`,
    );
  }
  return { source, kinds };
}

/** The CRD's schema, or a sentence saying why the document is not a usable cilium.io CRD. */
function crdSchemaOf(value: unknown, file: string): CrdSchema | string {
  const doc = asRecord(value);
  if (doc?.kind !== 'CustomResourceDefinition') return `not a CustomResourceDefinition (kind ${String(doc?.kind)})`;
  const spec = asRecord(doc.spec);
  const group = spec?.group;
  if (group !== CRD_GROUP) return `CRD of group ${String(group)}, expected ${CRD_GROUP}`;
  const kind = asRecord(spec?.names)?.kind;
  if (typeof kind !== 'string') return 'CRD without spec.names.kind';
  const versions = Array.isArray(spec?.versions) ? spec.versions : [];
  const version = versions.map(asRecord).find((v) => v?.name === CRD_VERSION && v.served === true);
  const schema = asRecord(asRecord(version?.schema)?.openAPIV3Schema);
  if (!schema) return `CRD ${kind} does not serve ${CRD_VERSION} with an openAPIV3Schema`;
  return { kind, group, version: CRD_VERSION, openAPIV3Schema: schema, file };
}

/** The cached copy of `url` (core/download.ts: streamed, retried, renamed into place), keyed by the URL's sha256. */
async function downloadOnce(url: string): Promise<string> {
  const key = createHash('sha256').update(url).digest('hex');
  return downloadToCache({ dir: await cacheDir('schemas'), name: `${key}.yaml`, what: `schema ${url}`, transport: httpTransport(url) });
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}
