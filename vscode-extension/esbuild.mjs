// Bundles the extension (CommonJS for VS Code's extension host; `vscode` external; the
// protocol package, socks-proxy-agent and zod inside) and the webview script (browser IIFE).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const here = new URL('.', import.meta.url).pathname;
mkdirSync(`${here}out`, { recursive: true });

// Type-check the browser code (tsc -b covers everything else).
execFileSync(process.execPath, [`${here}../node_modules/typescript/bin/tsc`, '-p', `${here}src/webview/tsconfig.json`], { stdio: 'inherit' });

await build({
  entryPoints: [`${here}src/vscode/extension.ts`],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outfile: `${here}out/extension.js`,
  external: ['vscode'],
  sourcemap: true,
  minify: false,
  logLevel: 'warning',
  // socks → ip-address etc. are plain CommonJS; the protocol package is ESM: esbuild converts.
  mainFields: ['module', 'main'],
  // `debug` (via socks-proxy-agent) prints SOCKS targets (.onion hosts) when DEBUG is set: never bundle it.
  alias: { debug: `${here}src/vscode/noDebug.ts` },
});

await build({
  entryPoints: [`${here}src/webview/main.ts`],
  bundle: true,
  platform: 'browser',
  target: 'es2022',
  format: 'iife',
  outfile: `${here}out/webview.js`,
  sourcemap: false,
  minify: true,
  logLevel: 'warning',
});
copyFileSync(`${here}src/webview/style.css`, `${here}out/webview.css`);
console.log('esbuild: out/extension.js, out/webview.js, out/webview.css');
