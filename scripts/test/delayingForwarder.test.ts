/// <reference types="mocha" />
import assert from 'node:assert/strict';
import net from 'node:net';
import { DelayingForwarder } from '../src/delayingForwarder.js';
import { freePorts } from '../src/ports.js';

/** An echo server on loopback that records when each chunk arrived. */
async function echoServer() {
  const arrivals: number[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (d: Buffer) => {
      arrivals.push(Date.now());
      s.write(d);
    });
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, arrivals, port: (server.address() as net.AddressInfo).port };
}

describe('DelayingForwarder (real TCP on loopback)', function () {
  this.timeout(10_000);

  it('delays each direction by the one-way delay, within the jitter bound, keeping byte order', async () => {
    const echo = await echoServer();
    const [port] = await freePorts(1);
    const fwd = await DelayingForwarder.listen('127.0.0.1', port!, echo.port, { delayMs: 40, jitterMs: 20 });
    try {
      const sock = net.connect({ host: '127.0.0.1', port: port! });
      await new Promise<void>((r) => sock.once('connect', () => r()));
      sock.setNoDelay(true);
      const received: Buffer[] = [];
      const done = new Promise<void>((r) => sock.on('end', () => r()));
      sock.on('data', (d: Buffer) => received.push(d));
      const sent = Date.now();
      let expected = '';
      // Many small writes: jitter must not reorder them.
      for (let i = 0; i < 200; i++) {
        const piece = `${i};`;
        expected += piece;
        sock.write(piece);
        if (i % 20 === 0) await new Promise((r) => setTimeout(r, 2));
      }
      const firstBack = new Promise<number>((r) => sock.once('data', () => r(Date.now())));
      sock.end();
      const rtt = (await firstBack) - sent;
      await done;
      assert.equal(Buffer.concat(received).toString(), expected, 'bytes arrive complete and in order');
      const oneWay = echo.arrivals[0]! - sent;
      assert.ok(oneWay >= 40, `one-way ${oneWay} ms ≥ 40 ms`);
      assert.ok(oneWay < 40 + 20 + 150, `one-way ${oneWay} ms within the bound (+ scheduling slack)`);
      assert.ok(rtt >= 80, `round trip ${rtt} ms ≥ 2 × 40 ms`);
      assert.equal(fwd.connections, 1);
      sock.destroy();
    } finally {
      await fwd.close();
      echo.server.close();
    }
  });

  it('passes a refused target on as a closed connection, and close() ends open connections', async () => {
    const [port, dead] = await freePorts(2);
    const fwd = await DelayingForwarder.listen('127.0.0.1', port!, dead!, { delayMs: 5 });
    try {
      const sock = net.connect({ host: '127.0.0.1', port: port! });
      sock.on('error', () => undefined);
      await new Promise<void>((r) => sock.once('close', () => r()));
    } finally {
      await fwd.close();
    }
    const echo = await echoServer();
    const fwd2 = await DelayingForwarder.listen('127.0.0.1', port!, echo.port, { delayMs: 5 });
    const sock = net.connect({ host: '127.0.0.1', port: port! });
    sock.on('error', () => undefined);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    await fwd2.close();
    await closed;
    echo.server.close();
  });
});
