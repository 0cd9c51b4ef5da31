/**
 * issue 12: the published source maps point at `../src/…`, which is not in the tarball. The build
 * config inlines the sources into each map (`inlineSources`), so debuggers and bundlers' source-map
 * loaders find them without the repository; checked here by compiling one module with the build
 * config's own options (cheap: no full build).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('published source maps', () => {
  it('issue 12: every map carries its sources (the tarball has no src/)', () => {
    const parsed = ts.getParsedCommandLineOfConfigFile(`${ROOT}tsconfig.build.json`, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(String(d.messageText)) });
    assert.ok(parsed);
    const o = parsed.options;
    assert.equal(o.sourceMap, true, 'maps are emitted');
    assert.equal(o.inlineSources, true, 'with their sources inlined');
    const file = `${ROOT}src/core/clock.ts`;
    const source = readFileSync(file, 'utf8');
    const out = ts.transpileModule(source, { compilerOptions: o, fileName: file });
    const map = JSON.parse(out.sourceMapText!) as { sources: string[]; sourcesContent?: (string | null)[] };
    assert.equal(map.sources.length, 1);
    assert.equal(map.sourcesContent?.[0], source);
  });
});
