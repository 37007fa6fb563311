/**
 * Defaults from a config file, so a repository can pin its schema, matrix and
 * baseline once. `--config FILE`, else `bpfgate.config.yaml` in the working
 * directory when present. Command-line flags win over the file. Paths in the file
 * are relative to the file.
 * Read in stages through the shared positioned input: read (config-missing) ->
 * YAML (config-yaml) -> schema (config-schema, cli/schema/config.schema.json).
 */
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { schemaValidator } from '../core/schemas.js';
import { YamlInput } from '../core/yaml-input.js';

export interface ConfigFile {
  schema?: string;
  matrix?: string;
  policies?: string[];
  baseline?: string;
  lock?: string;
  suites?: string[];
  cells?: string;
  jobs?: number;
  out?: string;
}

/** The file as written: a list may be one string. */
type RawConfig = Omit<ConfigFile, 'policies' | 'suites'> & { policies?: string | string[]; suites?: string | string[] };

export const DEFAULT_CONFIG = 'bpfgate.config.yaml';

export async function loadConfig(explicit?: string): Promise<ConfigFile> {
  const file = explicit ? resolve(explicit) : resolve(DEFAULT_CONFIG);
  if (!explicit && !existsSync(file)) return {};
  const input = await YamlInput.read(file, { missing: 'config-missing', syntax: 'config-yaml' }, 'config file');
  // An empty file sets nothing.
  if (input.value === null) return {};
  const raw = input.validate(schemaValidator<RawConfig>('config'), 'config-schema');
  const base = dirname(file);
  const abs = (p: string) => (/^[a-z]+:\/\//.test(p) || isAbsolute(p) ? p : resolve(base, p));
  const list = (v: string | string[]) => (typeof v === 'string' ? [v] : v);
  const out: ConfigFile = {};
  if (raw.schema !== undefined) out.schema = abs(raw.schema);
  if (raw.matrix !== undefined) out.matrix = abs(raw.matrix);
  if (raw.policies !== undefined) out.policies = list(raw.policies).map(abs);
  if (raw.baseline !== undefined) out.baseline = abs(raw.baseline);
  if (raw.lock !== undefined) out.lock = abs(raw.lock);
  if (raw.suites !== undefined) out.suites = list(raw.suites);
  if (raw.cells !== undefined) out.cells = raw.cells;
  if (raw.jobs !== undefined) out.jobs = raw.jobs;
  if (raw.out !== undefined) out.out = abs(raw.out);
  return out;
}
