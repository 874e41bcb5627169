/**
 * Builds the /demo page's browser script: proxy/web/demo/main.ts and the
 * browser-safe part of the protocol package (`@llmtor/protocol/wire`), bundled
 * in memory by esbuild when the page is enabled. esbuild is a development
 * dependency: the page needs a source checkout (`make demo`), not an image.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const WEB_DIR = fileURLToPath(new URL('../../../web/demo/', import.meta.url));

export interface DemoAssets {
  script: string;
  style: string;
}

export async function buildDemoAssets(): Promise<DemoAssets> {
  const entry = `${WEB_DIR}main.ts`;
  if (!existsSync(entry)) throw new Error(`the demo page needs the source checkout (${entry} is missing)`);
  // Only what is used, and a specifier tsc does not resolve: the proxy builds (images) without esbuild installed.
  let esbuild: { build(o: Record<string, unknown>): Promise<{ outputFiles: { text: string }[] }> };
  const specifier = 'esbuild';
  try {
    esbuild = (await import(specifier)) as typeof esbuild;
  } catch {
    throw new Error('the demo page needs esbuild (a development dependency: run `npm ci` in a source checkout)');
  }
  const out = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    write: false,
    minify: false,
    legalComments: 'none',
    logLevel: 'silent',
  });
  return { script: out.outputFiles[0]!.text, style: readFileSync(`${WEB_DIR}style.css`, 'utf8') };
}
