/** bpfgate's own version, from its package.json: shown by --version and recorded in run.json. */
import { readFileSync } from 'node:fs';
import { assetPath } from './assets.js';

export const BPFGATE_VERSION: string = (JSON.parse(readFileSync(assetPath('package.json'), 'utf8')) as { version: string }).version;
