/**
 * tornet — run the private loopback Tor network in the foreground.
 *
 *   node scripts/dist/bin/tornet.js [--onion-port PORT]... [--json] [--verbose] [--keep]
 *
 * Starts 3 authorities, a relay, an exit (loopback only), a client and an onion service,
 * publishes each --onion-port (127.0.0.1:PORT as <address>.onion:80; without any, a small
 * built-in hello server), prints the SOCKS port, the control port and the onion
 * address(es), and stops every tor process on Ctrl-C (SIGINT) or SIGTERM.
 */
import http from 'node:http';
import type net from 'node:net';
import { startTorNetwork, type TorNetwork } from '../src/torNetwork.js';

function usage(code: number): never {
  process.stderr.write(
    'usage: tornet [--onion-port PORT]... [--json] [--verbose] [--keep]\n' +
      '  --onion-port PORT  publish 127.0.0.1:PORT as an onion service (virtual port 80);\n' +
      '                     without it a built-in hello server is published\n' +
      '  --json             print one JSON line with ports and addresses\n' +
      '  --verbose          print start-up progress on stderr\n' +
      '  --keep             keep the data directory (tor logs) after stop\n',
  );
  process.exit(code);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const onionPorts: number[] = [];
  let json = false;
  let verbose = false;
  let keep = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--onion-port') {
      const port = Number(args[++i]);
      if (!Number.isInteger(port) || port <= 0 || port > 65535) usage(2);
      onionPorts.push(port);
    } else if (a === '--json') json = true;
    else if (a === '--verbose' || a === '-v') verbose = true;
    else if (a === '--keep') keep = true;
    else if (a === '--help' || a === '-h') usage(0);
    else usage(2);
  }

  let hello: http.Server | undefined;
  if (onionPorts.length === 0) {
    hello = http.createServer((req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end(`hello from the loopback onion service (${req.method} ${req.url})\n`);
    });
    await new Promise<void>((r) => hello!.listen(0, '127.0.0.1', () => r()));
    onionPorts.push((hello.address() as net.AddressInfo).port);
  }

  const started = Date.now();
  const state: { network?: TorNetwork } = {};
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${signal}: stopping the tor network…\n`);
    await state.network?.stop();
    hello?.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  const n = await startTorNetwork({
    onionTargets: onionPorts,
    keepDataDir: keep,
    log: verbose ? (s) => process.stderr.write(`[tornet ${((Date.now() - started) / 1000).toFixed(1)}s] ${s}\n`) : undefined,
  });
  state.network = n;
  if (stopping) {
    await n.stop();
    return;
  }
  const info = {
    socksPort: n.socksPort,
    socksUrl: `socks5h://127.0.0.1:${n.socksPort}`,
    controlPort: n.controlPort,
    cookiePath: n.cookiePath,
    onions: n.onions.map((o) => ({ address: o.address, url: `http://${o.address}/`, localPort: o.localPort })),
    exitFingerprint: n.exitFingerprint,
    pids: n.pids,
    dataDir: n.baseDir,
    readyMs: Date.now() - started,
  };
  if (json) {
    process.stdout.write(JSON.stringify(info) + '\n');
  } else {
    const lines = [
      `Tor test network ready in ${(info.readyMs / 1000).toFixed(1)} s`,
      `SOCKS port:   ${n.socksPort}   (${info.socksUrl}; any user:pass isolates circuits)`,
      `control port: ${n.controlPort}   (cookie ${n.cookiePath})`,
      ...n.onions.map((o) => `onion:        ${o.address}   → 127.0.0.1:${o.localPort}`),
      `exit:         ${n.exitFingerprint} (accepts 127.0.0.0/8 only)`,
      `data dir:     ${n.baseDir}${keep ? ' (kept)' : ''}`,
      '',
      `try: curl --socks5-hostname 127.0.0.1:${n.socksPort} http://${n.onions[0]?.address ?? '<onion>'}/`,
      'Ctrl-C stops every tor process.',
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`tornet: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
