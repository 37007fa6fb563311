/**
 * attack-layer.json: an ATT&CK Navigator layer (format 4.5, enterprise-attack) of the
 * run, so a team reads its detection coverage the way it already reads ATT&CK. Each
 * technique of the trigger catalogue is scored by what the policies caught of its
 * triggers, cell by cell: on the kernel lane a trigger is caught when one of the hooks
 * it is meant to reach (its `hooks:`) is a policy's hook and fired (its `coverage`
 * check lists every policy hook it fired; an exec any policy sees does not count), on
 * an agent lane when the agent exported its events (`tetragon:events`,
 * `cluster:events`). The score is the share of trigger x cell pairs caught, among
 * those that gave an answer; the comment and the metadata say which cells caught or
 * missed it, and how.
 * Invariant: a pure function of the model; techniques of the catalogue that did not
 * run stay in the layer unscored, so the layer also shows what was not tested.
 */
import { cutSyscallPrefix } from '../policy/syscalls.js';
import type { ModelCheck, ModelPair, ModelRow, ReportModel, TriggerInfo } from './model.js';

/** What the layer says of one trigger on one cell: caught, missed, or no answer (null). */
export interface CellCatch {
  caught: boolean | null;
  /** How, in a few words: "kernel: 3 hooks fired", "agent: events matched". */
  how: string;
}

const AGENT_EVENTS = /^(tetragon|cluster):events$/;

function hookList(names: readonly string[]): string {
  return `${names.slice(0, 3).join(', ')}${names.length > 3 ? `, +${names.length - 3}` : ''}`;
}

/** Is `symbol` the arch wrapper of syscall `name` (`__x64_sys_X` for `sys_X`)? */
function isSyscallWrapper(symbol: string, name: string): boolean {
  const cut = cutSyscallPrefix(symbol);
  return cut.prefix !== undefined && cut.name === name;
}

/**
 * The probe names a hint of the catalogue is attached as (the policies suite's target
 * names): `kprobe:sys_X` as the arch's `__x64_sys_X` / `__arm64_sys_X`, `lsm:H` as
 * `bpf_lsm_H`, a kprobe also as its kretprobe.
 */
export function hintFired(hint: string, fired: readonly string[]): boolean {
  const colon = hint.indexOf(':');
  const kind = hint.slice(0, colon);
  const name = hint.slice(colon + 1);
  return fired.some((key) => {
    const k = key.indexOf(':');
    const kk = key.slice(0, k);
    const what = key.slice(k + 1);
    switch (kind) {
      case 'kprobe':
        return (kk === 'kprobe' || kk === 'kretprobe') && (what === name || (name.startsWith('sys_') && isSyscallWrapper(what, name)));
      case 'lsm':
        return kk === 'kprobe' && what === `bpf_lsm_${name}`;
      case 'tracepoint':
      case 'rawtp':
        return kk === 'tracepoint' && what === name;
      default:
        return kk === kind && what === name;
    }
  });
}

/** One check's answer, or null for a check that says nothing about catching. */
function checkCatch(c: ModelCheck, hints: readonly string[]): CellCatch | null {
  if (c.check === 'coverage') {
    if (c.status === 'error') return { caught: null, how: `kernel: ${c.reason ?? 'error'}` };
    const fired = Object.keys((c.evidence.fired ?? {}) as Record<string, unknown>);
    if (hints.length === 0) return { caught: null, how: `kernel: ${fired.length} policy hooks fired; the trigger names no hooks to judge by` };
    const hit = hints.filter((h) => hintFired(h, fired));
    if (hit.length) return { caught: true, how: `kernel: ${hookList(hit)} fired` };
    const silent = Array.isArray(c.evidence.hintsNotFired) ? (c.evidence.hintsNotFired as string[]) : [];
    return { caught: false, how: silent.length ? `kernel: ${hookList(silent)} watched and silent` : 'kernel: no policy hooks what it reaches' };
  }
  if (AGENT_EVENTS.test(c.check)) {
    if (c.status === 'pass') return { caught: true, how: 'agent: events matched' };
    if (c.reason === 'event-mismatch' && Number(c.evidence.events ?? 0) > 0) return { caught: true, how: `agent: ${String(c.evidence.events)} events, none as expected` };
    if (c.status === 'fail') return { caught: false, how: `agent: ${c.reason ?? 'failed'}` };
    return { caught: null, how: `agent: ${c.reason ?? c.status}` };
  }
  return null;
}

/** A trigger on a cell: caught when any lane caught it; missed when a lane answered and none caught it. */
export function cellCatch(pair: ModelPair, hints: readonly string[] = []): CellCatch | null {
  const answers = pair.checks.map((c) => checkCatch(c, hints)).filter((a): a is CellCatch => a !== null);
  if (answers.length === 0) return null;
  const caught = answers.some((a) => a.caught === true) ? true : answers.some((a) => a.caught === false) ? false : null;
  return { caught, how: answers.map((a) => a.how).join('; ') };
}

/** A Navigator technique object (layer format 4.5). */
export interface LayerTechnique {
  techniqueID: string;
  tactic: string;
  score?: number;
  comment: string;
  enabled: boolean;
  metadata: ({ name: string; value: string } | { divider: true })[];
  showSubtechniques: boolean;
}

export interface AttackLayer {
  name: string;
  versions: { attack: string; navigator: string; layer: '4.5' };
  domain: 'enterprise-attack';
  description: string;
  filters: { platforms: string[] };
  sorting: number;
  layout: { layout: 'side'; aggregateFunction: 'average'; showID: boolean; showName: boolean; showAggregateScores: boolean; countUnscored: boolean; expandedSubtechniques: 'annotated' };
  hideDisabled: boolean;
  techniques: LayerTechnique[];
  gradient: { colors: string[]; minValue: number; maxValue: number };
  legendItems: { label: string; color: string }[];
  metadata: { name: string; value: string }[];
  links: never[];
  showTacticRowBackground: boolean;
  tacticRowBackground: string;
  selectTechniquesAcrossTactics: boolean;
  selectSubtechniquesWithParent: boolean;
  selectVisibleTechniques: boolean;
}

/** The ATT&CK release the catalogue's technique ids were written against, and a Navigator that reads format 4.5. */
export const LAYER_VERSIONS = { attack: '17', navigator: '5.1.0', layer: '4.5' } as const;

interface TechniqueGroup {
  technique: string;
  tactic: string;
  triggers: { id: string; name: string; hooks: string[]; row: ModelRow | undefined }[];
}

/** Catalogue techniques (and any technique only the results name), one group per technique and tactic. */
function techniqueGroups(model: ReportModel): TechniqueGroup[] {
  const rows = new Map(model.rows.filter((r) => r.section === 'triggers').map((r) => [r.subject, r]));
  const infos: TriggerInfo[] = [...model.triggers];
  for (const r of rows.values()) {
    if (!infos.some((t) => t.id === r.subject) && r.label.technique) {
      infos.push({ id: r.subject, technique: r.label.technique, name: r.label.name, tactic: r.label.tactic ?? '', hooks: [] });
    }
  }
  const groups = new Map<string, TechniqueGroup>();
  for (const t of infos) {
    const key = `${t.technique}\u0000${t.tactic}`;
    const g = groups.get(key) ?? { technique: t.technique, tactic: t.tactic, triggers: [] };
    g.triggers.push({ id: t.id, name: t.name, hooks: t.hooks, row: rows.get(t.id) });
    groups.set(key, g);
  }
  return [...groups.values()].sort((a, b) => (a.technique < b.technique ? -1 : a.technique > b.technique ? 1 : a.tactic < b.tactic ? -1 : a.tactic > b.tactic ? 1 : 0));
}

function techniqueOf(g: TechniqueGroup, model: ReportModel): LayerTechnique {
  const metadata: LayerTechnique['metadata'] = [];
  let caught = 0;
  let answered = 0;
  const missedOn: string[] = [];
  const caughtOn: string[] = [];
  for (const t of g.triggers) {
    if (metadata.length) metadata.push({ divider: true });
    metadata.push({ name: 'trigger', value: `${t.id}: ${t.name}` });
    for (const cell of model.cells) {
      const pair = t.row?.cells[cell.id];
      const c = pair ? cellCatch(pair, t.hooks) : null;
      if (!c) continue;
      metadata.push({ name: cell.id, value: `${c.caught === true ? 'caught' : c.caught === false ? 'missed' : 'no answer'}: ${c.how}` });
      if (c.caught === null) continue;
      answered++;
      if (c.caught) {
        caught++;
        if (!caughtOn.includes(cell.id)) caughtOn.push(cell.id);
      } else if (!missedOn.includes(cell.id)) missedOn.push(cell.id);
    }
  }
  const tech: LayerTechnique = { techniqueID: g.technique, tactic: g.tactic, comment: '', enabled: true, metadata, showSubtechniques: false };
  if (answered === 0) {
    const ran = g.triggers.some((t) => t.row);
    tech.comment = ran ? 'Its triggers ran, but no lane answered whether a policy caught them (see table.html).' : 'In the trigger catalogue; not run in this run.';
    return tech;
  }
  tech.score = Math.round((100 * caught) / answered);
  const parts = [`Caught in ${caught} of ${answered} trigger runs (${g.triggers.map((t) => t.id).join(', ')}).`];
  if (caughtOn.length) parts.push(`Caught on ${caughtOn.join(', ')}.`);
  if (missedOn.length) parts.push(`Missed on ${missedOn.join(', ')}.`);
  tech.comment = parts.join(' ');
  return tech;
}

/** The layer of a model. */
export function attackLayer(model: ReportModel): AttackLayer {
  const cells = model.cells.map((c) => c.id);
  const techniques = techniqueGroups(model).map((g) => techniqueOf(g, model));
  return {
    name: 'bpfgate: detection coverage',
    versions: { ...LAYER_VERSIONS },
    domain: 'enterprise-attack',
    description:
      `What the policies caught of bpfgate's ATT&CK triggers on ${cells.length} cells (${cells.join(', ')}). ` +
      'Score: the share of trigger runs caught (a policy hook fired on the kernel lane, or the agent exported the events). Unscored: not run.',
    filters: { platforms: ['Linux'] },
    sorting: 3,
    layout: { layout: 'side', aggregateFunction: 'average', showID: true, showName: true, showAggregateScores: false, countUnscored: false, expandedSubtechniques: 'annotated' },
    hideDisabled: false,
    techniques,
    gradient: { colors: ['#ff6666', '#ffe766', '#8ec843'], minValue: 0, maxValue: 100 },
    legendItems: [
      { label: 'caught on every cell', color: '#8ec843' },
      { label: 'caught on none', color: '#ff6666' },
    ],
    metadata: [
      ...(model.run ? [{ name: 'bpfgate', value: model.run.bpfgate }, { name: 'run started', value: model.run.startedAt }] : []),
      { name: 'cells', value: cells.join(', ') },
    ],
    links: [],
    showTacticRowBackground: false,
    tacticRowBackground: '#dddddd',
    selectTechniquesAcrossTactics: true,
    selectSubtechniquesWithParent: false,
    selectVisibleTechniques: false,
  };
}

export const ATTACK_LAYER = 'attack-layer.json';

export function renderAttackLayer(model: ReportModel): string {
  return `${JSON.stringify(attackLayer(model), null, 2)}\n`;
}
