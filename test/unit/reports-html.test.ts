import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { CheckResult } from '../../core/check.js';
import { escapeHtml, evidenceId, renderHtml } from '../../reports/html.js';
import { buildModel, type ReportModel } from '../../reports/model.js';
import { fixtureManifest, fixtureResults } from '../support/report-fixture.js';

const RESULTS = fixtureResults();
const MANIFEST = fixtureManifest();
const CELLS = MANIFEST.cells;
const POLICY_FILES = MANIFEST.inputs.policies.files.map((f) => f.path);

const HOSTILE: CheckResult = {
  cell: 'arm64-4k-6.1',
  lane: 'kernel',
  suite: 'policies',
  subject: '<img src=x onerror=alert(1)>',
  check: 'hook:kprobe:"><script>alert(2)</script>',
  status: 'fail',
  reason: 'load-error',
  evidence: { error: '</pre></details></script><script>alert(3)</script>', path: "it's & \"quoted\"" },
  durationMs: 2,
  source: { file: '/tmp/<b>policy</b>.yaml', line: 4 },
};

/** The page's packed checks and evidence, as the page's script unpacks them. */
function pageData(html: string): { p: Record<string, [number, [string, string, string | null, number, number, string, number | string | null][]]>; a: string[]; e: unknown[] } {
  const packed = /<script type="application\/gzip" id="bpfgate-data">([^<]*)<\/script>/.exec(html)?.[1];
  expect(packed).toBeTruthy();
  return JSON.parse(gunzipSync(Buffer.from(packed ?? '', 'base64')).toString('utf8'));
}

/** The markup of one section's grid. */
function section(html: string, id: string): string {
  const start = html.indexOf(`<section id="s-${id}"`);
  expect(start, id).toBeGreaterThan(0);
  return html.slice(start, html.indexOf('</section>', start));
}

describe('table.html', () => {
  const model = buildModel(RESULTS, CELLS, { policyFiles: POLICY_FILES, link: (file) => `https://github.com/o/r/blob/abc/${file.split('/').slice(-2).join('/')}` });
  const html = renderHtml(model);

  it('escapes the five HTML-significant characters', () => {
    expect(escapeHtml(`<a href="x">Tom & 'Jerry'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;');
  });

  it('shows hostile subjects, checks, evidence and paths as text only, and keeps them whole in the packed evidence', () => {
    const hostile = renderHtml(buildModel([...RESULTS.slice(0, 50), HOSTILE], CELLS));
    // One script runs: the page's own; the two data blocks are of types a browser does not run.
    expect(hostile.match(/<script>/g)).toHaveLength(1);
    expect(hostile.match(/<script type="application\/(json|gzip)" id="bpfgate-(cells|data)">/g)).toHaveLength(2);
    expect(hostile).not.toContain('<img');
    expect(hostile).not.toContain('<b>policy');
    expect(hostile).not.toContain('alert(2)</script>');
    expect(hostile).not.toContain('alert(3)');
    expect(hostile).toContain('&lt;img src=x onerror=alert(1)&gt;');
    const data = pageData(hostile);
    const pair = Object.values(data.p).find(([, checks]) => checks.some((c) => c[0] === HOSTILE.check));
    expect(pair).toBeDefined();
    const check = pair![1].find((c) => c[0] === HOSTILE.check)!;
    expect(data.e[check[3]]).toEqual(HOSTILE.evidence);
  });

  it('loads nothing from outside the page; its only links are anchors and the policies\' own files', () => {
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">`);
    expect(html).not.toMatch(/\bsrc="/);
    expect(html).not.toMatch(/<link\b|@import|url\(/);
    const hrefs = [...html.matchAll(/\bhref="([^"]*)"/g)].map((m) => m[1]!);
    expect(hrefs.length).toBeGreaterThan(100);
    for (const href of hrefs) expect(href).toMatch(/^(#[a-z0-9-]+|https:\/\/github\.com\/o\/r\/blob\/abc\/[^"#]+#L\d+)$/);
  });

  it('has a grid per section, in order, each row named as users know it', () => {
    const order = ['s-features', 's-policies', 's-triggers'].map((id) => html.indexOf(`<section id="${id}"`));
    expect(order.every((i, k) => i > 0 && (k === 0 || i > order[k - 1]!))).toBe(true);
    expect(html).not.toContain('<section id="s-nodes"');
    const policies = section(html, 'policies');
    // metadata.name, the file relative to its --policies root, and a link to its line.
    const nsenter = model.rows.find((r) => r.subject === 'deny-nsenter')!;
    expect(policies).toContain(
      `<span class="nm">deny-nsenter</span><a class="src" href="https://github.com/o/r/blob/abc/01_cilium_tracing_policy/02_nsenter.yaml#L${nsenter.source!.line}">` +
        `tetragon-extra/docs/security-observability-with-ebpf/04_chapter/01_cilium_tracing_policy/02_nsenter.yaml:${nsenter.source!.line}</a>`,
    );
    expect(policies).toContain('<span class="nm">syscalls</span>');
    expect(section(html, 'triggers')).toContain('<span class="tq">T1059.004</span>');
    expect(section(html, 'features')).toContain('<span class="nm">ringbuf-4096</span>');
  });

  it('marks every grid cell with a plain word and its reason code: no emoji, nothing a font may lack', () => {
    const grids = ['features', 'policies', 'triggers'].map((id) => section(html, id)).join('');
    const cells = [...grids.matchAll(/<td class="([pfesn])">(.*?)<\/td>/g)];
    expect(cells.length).toBe(model.rows.length * model.cells.length);
    for (const [, cls, inner] of cells) {
      if (cls === 'n') expect(inner).toBe('-');
      else expect(inner).toMatch(/^<a href="#ev-\d+-\d+">(ok|FAIL|ERROR|skip)( <small>[a-z0-9-]+<\/small>)?<\/a>$/);
    }
    expect(grids).toMatch(/^[\x20-\x7e\n]*$/);
  });

  it('says for every cell that is not green its reason, and packs what to do and every check with its evidence', () => {
    const data = pageData(html);
    let pairs = 0;
    for (const [r, row] of model.rows.entries()) {
      for (const [c, cell] of model.cells.entries()) {
        const pair = row.cells[cell.id];
        if (!pair) continue;
        pairs++;
        const id = evidenceId(r, c);
        expect(html).toContain(`<a href="#${id}">`);
        const [advice, checks] = data.p[`${r}-${c}`]!;
        expect(checks.map((k) => k[0])).toEqual(pair.checks.map((k) => k.check));
        expect(checks.map((k) => data.e[k[3]])).toEqual(pair.checks.map((k) => k.evidence));
        if (pair.status === 'pass') expect(advice).toBe(-1);
        else {
          expect(html).toContain(`<a href="#${id}">${{ fail: 'FAIL', error: 'ERROR', skip: 'skip' }[pair.status]} <small>${pair.reason}</small></a>`);
          expect(data.a[advice]).toBe(pair.advice);
        }
      }
    }
    expect(Object.keys(data.p)).toHaveLength(pairs);
    // Evidence shared by several checks is packed once.
    expect(data.e.length).toBeLessThan(RESULTS.length);
  });

  it('explains every reason present with what to do, in words', () => {
    for (const r of model.reasons) expect(html).toMatch(new RegExp(`<dt data-code="${r.code}"><code>${r.code}</code>.*?</dt><dd><span class="words">[^<]+</span><br><b>What to do:</b> <span class="todo">`));
  });

  it('opens with what changed when there is a baseline verdict or a previous run', () => {
    expect(html).not.toContain('<section id="changes">');
    const nsenter = RESULTS.find((r) => r.subject === 'deny-nsenter' && r.cell === 'arm64-4k-6.12' && r.check === 'hooks')!;
    const previous = RESULTS.map((r) => (r === nsenter ? { ...r, status: 'pass' as const, reason: null } : r));
    const m: ReportModel = buildModel(RESULTS, CELLS, { previous: { against: 'runs/last-week', results: previous } });
    const page = renderHtml(m);
    const changes = page.slice(page.indexOf('<section id="changes">'), page.indexOf('<section id="cells">'));
    expect(page.indexOf('<section id="changes">')).toBeLessThan(page.indexOf('<section id="cells">'));
    expect(changes).toContain('Against <code>runs/last-week</code>: <span class="ch worse">1 worse</span>');
    const r = m.rows.findIndex((x) => x.subject === 'deny-nsenter');
    const c = m.cells.findIndex((x) => x.id === 'arm64-4k-6.12');
    expect(changes).toContain(`<tr class="ch worse"><td>worse</td><td><a href="#ev-${r}-${c}">deny-nsenter</a></td><td>arm64-4k-6.12</td><td>hooks</td><td><b class="b p">ok</b></td><td><b class="b f">FAIL</b> symbol-missing</td></tr>`);
  });
});
