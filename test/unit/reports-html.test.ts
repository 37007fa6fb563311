import { describe, expect, it } from 'vitest';
import type { CheckResult } from '../../core/check.js';
import { escapeHtml, evidenceId, renderHtml } from '../../reports/html.js';
import { buildModel } from '../../reports/model.js';
import { DEFAULT_FACTS, realisticResults } from '../support/realistic-results.js';

const CELLS = DEFAULT_FACTS;

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

describe('table.html', () => {
  it('escapes the five HTML-significant characters', () => {
    expect(escapeHtml(`<a href="x">Tom & 'Jerry'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;');
  });

  it('shows hostile subjects, checks, evidence and paths as text only', () => {
    const html = renderHtml(buildModel([...realisticResults().slice(0, 50), HOSTILE], CELLS));
    expect(html.match(/<script>/g)).toHaveLength(1);
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<b>policy');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('&lt;/pre&gt;&lt;/details&gt;&lt;/script&gt;&lt;script&gt;alert(3)&lt;/script&gt;');
    expect(html).toContain('hook:kprobe:&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;');
  });

  it('loads nothing from outside the page', () => {
    const html = renderHtml(buildModel(realisticResults(), CELLS));
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">`);
    expect(html).not.toMatch(/\b(src|href)="(?!#)/);
    expect(html).not.toMatch(/<link\b|@import|url\(/);
  });

  it('links every run subject x cell to an evidence block with that id', () => {
    const model = buildModel(realisticResults(), CELLS);
    const html = renderHtml(model);
    let pairs = 0;
    for (const [r, row] of model.rows.entries()) {
      for (const [c, cell] of model.cells.entries()) {
        if (!row.cells[cell.id]) continue;
        pairs++;
        const id = evidenceId(r, c);
        expect(html).toContain(`<a href="#${id}"`);
        expect(html).toContain(`<details id="${id}" data-row="${r}" data-col="${c}">`);
      }
    }
    expect(html.match(/<details /g)).toHaveLength(pairs);
  });
});
