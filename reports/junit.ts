/**
 * junit.xml: one testsuite per cell (in column order), one testcase per subject and
 * check (classname = subject, name = check). fail -> <failure> with the reason and
 * the evidence JSON, error -> <error>, skip -> <skipped>; lane, suite and the policy
 * line are testcase properties. Built with junit-report-builder, which escapes.
 */
import junitModule, { type Builder } from 'junit-report-builder';
import { REASONS } from '../core/reasons.js';
import type { ModelCheck, ReportModel } from './model.js';

// The package's typings declare an ES default export, but its CommonJS build sets
// module.exports to the builder itself: accept either shape.
const junit = ((junitModule as unknown as { default?: Builder }).default ?? junitModule) as unknown as Builder;

function reasonText(c: ModelCheck): string {
  return c.reason ? `${c.reason}: ${REASONS[c.reason] ?? c.reason}` : c.status;
}

function evidenceText(c: ModelCheck): string {
  return JSON.stringify(c.evidence, null, 2);
}

/** The junit.xml text of a model. */
export function renderJunit(model: ReportModel): string {
  const builder = junit.newBuilder().name('bpfgate');
  for (const cell of model.cells) {
    const cases = model.rows.flatMap((row) => (row.cells[cell.id]?.checks ?? []).map((check) => ({ subject: row.subject, check })));
    if (cases.length === 0) continue;
    const suite = builder.testSuite().name(cell.id);
    suite.time(cases.reduce((sum, c) => sum + c.check.durationMs, 0) / 1000);
    for (const { subject, check: c } of cases) {
      const tc = suite.testCase().className(subject).name(c.check).time(c.durationMs / 1000);
      tc.property('lane', c.lane).property('suite', c.suite);
      if (c.source) tc.property('source', `${c.source.file}:${c.source.line}`);
      const hasEvidence = Object.keys(c.evidence).length > 0;
      switch (c.status) {
        case 'fail':
          tc.failure(reasonText(c), c.reason ?? 'fail').stacktrace(evidenceText(c));
          break;
        case 'error':
          tc.error(reasonText(c), c.reason ?? 'error', evidenceText(c));
          break;
        case 'skip':
          tc.skipped().standardOutput(`${reasonText(c)}\n${evidenceText(c)}`);
          break;
        case 'pass':
          if (hasEvidence) tc.standardOutput(evidenceText(c));
          break;
      }
    }
  }
  return builder.build();
}
