#!/usr/bin/env node
// Project rules tsc cannot check:
// - only src/core/clock.ts touches real time (Date.now, new Date(), setTimeout, setInterval, performance.now);
//   real-server I/O may measure request deadlines in real time on a line marked
//   `// lint-allow: real-server deadline` (real servers run in real time; nothing a lock decides uses it);
// - library code never prints (console.*), except the CLI;
// - no explicit `any`;
// - no production module imports src/testing.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}
const rules = [
  { re: /\b(Date\.now\(|new Date\(\)|setTimeout\(|setInterval\(|performance\.now\()/, msg: 'real time outside src/core/clock.ts', skip: (f) => f === 'src/core/clock.ts' },
  { re: /\bconsole\.(log|error|warn|info|debug)\(/, msg: 'printing from library code', skip: (f) => f.startsWith('src/cli/') },
  { re: /(:\s*any\b|<any>|\bas any\b|any\[\])/, msg: 'explicit any', skip: () => false },
  { re: /from '(\.\.\/)+testing\//, msg: 'production module imports src/testing', skip: (f) => f.startsWith('src/testing/') },
];
const problems = [];
for (const file of walk('src')) {
  const rel = relative('.', file).split('\\').join('/');
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '');
      if (/^\s*(\*|\/\*)/.test(line) || line.includes('lint-allow: real-server deadline')) return;
      for (const r of rules) if (!r.skip(rel) && r.re.test(code)) problems.push(`${rel}:${i + 1}: ${r.msg}: ${line.trim()}`);
    });
}
if (problems.length) {
  console.error(problems.join('\n'));
  console.error(`\n${problems.length} problem(s)`);
  process.exit(1);
}
console.log('lint: ok');
