/**
 * How the guest resolved what it registered (suites/policies/guest/policies.sh, record
 * `resolved`): a kprobe taken under its fallback name, a uprobe's file and offset, a
 * binary or symbol the cell lacks, a generated list's expansion, the mmap events held
 * open for the loader's hook. One line per target: `NAME WHAT ...`.
 */

export interface ListExpansion {
  /** Functions the list expanded to on this cell. */
  expanded: number;
  /** Of those, the kprobes the kernel took (the refusals and the kernel's words are in `registered`). */
  registered: number;
  /** Compiler clones (`.constprop.0`, `.isra.0`): no BTF function has their name, and the agent refuses them; not registered. */
  clones: number;
  /** Seconds the guest spent expanding and registering it. */
  seconds: number;
}

export interface Resolution {
  /** kprobes the kernel refused as written and took under the agent's fallback name. */
  fallback: Map<string, { symbol: string; refused: string }>;
  /** uprobes and USDTs as registered: `PATH:OFFSET` or `PATH:OFFSET(SEMAPHORE)`. */
  uprobes: Map<string, string>;
  /** A binary the cell lacks, with the files of the same name it has. */
  binaryMissing: Map<string, { path: string; sameName: string[] }>;
  /** A binary without the symbol (uprobe) or USDT probe the policy names. */
  symbolMissing: Map<string, { path: string; what: 'symbol' | 'probe' }>;
  lists: Map<string, ListExpansion>;
  /** Lists beyond the guest's cap, not registered. */
  tooLarge: Map<string, { expanded: number; cap: number }>;
  /** The loader's mmap events: "opened N of M cpus", or what went wrong. */
  mmapEvents?: string;
}

export function emptyResolution(): Resolution {
  return { fallback: new Map(), uprobes: new Map(), binaryMissing: new Map(), symbolMissing: new Map(), lists: new Map(), tooLarge: new Map() };
}

export function parseResolved(body: string): Resolution {
  const r = emptyResolution();
  for (const line of body.split('\n')) {
    const [name, what, ...rest] = line.trim().split(/\s+/);
    if (!name || !what) continue;
    switch (what) {
      case 'symbol':
        // NAME symbol FALLBACK PLAIN: WORDS
        r.fallback.set(name, { symbol: rest[0] ?? '', refused: rest.slice(1).join(' ') });
        break;
      case 'uprobe':
        r.uprobes.set(name, rest[0] ?? '');
        break;
      case 'binary-missing':
        r.binaryMissing.set(name, { path: rest[0] ?? '', sameName: rest.slice(1) });
        break;
      case 'symbol-missing':
      case 'probe-missing':
        r.symbolMissing.set(name, { path: rest[0] ?? '', what: what === 'symbol-missing' ? 'symbol' : 'probe' });
        break;
      case 'list': {
        // NAME list EXPANDED REGISTERED T0 T1 CLONES (T0, T1: guest uptimes)
        const [expanded, registered, t0, t1, clones] = rest;
        r.lists.set(name, {
          expanded: Number(expanded),
          registered: Number(registered),
          clones: Number(clones ?? 0),
          seconds: Math.round((Number(t1) - Number(t0)) * 100) / 100,
        });
        break;
      }
      case 'list-too-large':
        r.tooLarge.set(name, { expanded: Number(rest[0]), cap: Number(rest[1]) });
        break;
      default:
        if (name === 'mmap-events') r.mmapEvents = [what, ...rest].join(' ');
    }
  }
  return r;
}
