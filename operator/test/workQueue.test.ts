import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkQueue, type WorkOutcome } from '../src/index.js';

/** A worker that records each run (key, start time) and the most runs in flight at once. */
function recorder(outcome: (key: string, n: number) => WorkOutcome | Promise<WorkOutcome> = () => ({}), runMs = 0) {
  const runs: { key: string; at: number }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const t0 = Date.now();
  const work = async (key: string): Promise<WorkOutcome> => {
    runs.push({ key, at: Date.now() - t0 });
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      if (runMs) await sleep(runMs);
      return await outcome(key, runs.filter((r) => r.key === key).length);
    } finally {
      inFlight--;
    }
  };
  return { runs, work, maxInFlight: () => maxInFlight };
}

describe('WorkQueue: delayed add, dedupe, one run in flight, back-off (no informers)', function () {
  this.timeout(10_000);
  let queue: WorkQueue<string> | undefined;
  afterEach(async () => queue?.shutDown());

  it('dedupes: many adds of one key before it is due run it once', async () => {
    const r = recorder();
    queue = new WorkQueue({ work: r.work, maxDelayMs: 60_000 });
    for (let i = 0; i < 5; i++) queue.add('a', 20);
    queue.add('b', 20);
    await sleep(120);
    assert.deepEqual(r.runs.map((x) => x.key).sort(), ['a', 'b']);
  });

  it('the earliest due time wins: a later add does not postpone, an earlier one brings it forward', async () => {
    const r = recorder();
    queue = new WorkQueue({ work: r.work, maxDelayMs: 60_000 });
    queue.add('a', 300);
    queue.add('a', 10_000);
    const due = queue.dueAt('a')!;
    assert.ok(due - Date.now() <= 300, 'a later add kept the earlier time');
    queue.add('a', 30);
    await sleep(150);
    assert.equal(r.runs.length, 1);
    assert.ok(r.runs[0]!.at < 150);
    await sleep(300);
    assert.equal(r.runs.length, 1, 'the superseded 300 ms run does not happen as well');
  });

  it('caps a delay at maxDelayMs', async () => {
    const r = recorder();
    queue = new WorkQueue({ work: r.work, maxDelayMs: 40 });
    queue.add('a', 3_600_000);
    await sleep(150);
    assert.equal(r.runs.length, 1);
  });

  it('one run in flight per key: an add during a run runs it once more afterwards, never concurrently', async () => {
    const r = recorder(() => ({}), 80);
    queue = new WorkQueue({ work: r.work, maxDelayMs: 60_000 });
    queue.add('a');
    await sleep(20);
    queue.add('a');
    queue.add('a');
    await sleep(300);
    assert.equal(r.runs.length, 2);
    assert.equal(r.maxInFlight(), 1);
    assert.ok(r.runs[1]!.at >= 80, `second run started at ${r.runs[1]!.at} ms, before the first ended`);
  });

  it('different keys run side by side', async () => {
    const r = recorder(() => ({}), 80);
    queue = new WorkQueue({ work: r.work, maxDelayMs: 60_000 });
    queue.add('a');
    queue.add('b');
    await sleep(40);
    assert.equal(r.maxInFlight(), 2);
  });

  it('requeues after the worker\'s requeueAfterMs', async () => {
    const r = recorder((_k, n) => (n < 3 ? { requeueAfterMs: 20 } : {}));
    queue = new WorkQueue({ work: r.work, maxDelayMs: 60_000 });
    queue.add('a');
    await sleep(250);
    assert.equal(r.runs.length, 3);
  });

  it('back-off: a hold delays plain adds; an add that lifts it runs at once', async () => {
    const r = recorder((_k, n) => (n === 1 ? { requeueAfterMs: 400, holdMs: 400 } : {}));
    queue = new WorkQueue({ work: r.work, maxDelayMs: 60_000 });
    queue.add('a');
    await sleep(30);
    queue.add('a', 0);
    await sleep(100);
    assert.equal(r.runs.length, 1, 'a plain add waited for the hold');
    queue.add('a', 0, { liftHold: true });
    await sleep(60);
    assert.equal(r.runs.length, 2, 'lifting the hold ran it');
    assert.ok(r.runs[1]!.at < 300);
  });

  it('a worker that throws is reported and retried after errorRetryMs, held meanwhile', async () => {
    const errors: string[] = [];
    const r = recorder((_k, n) => {
      if (n === 1) throw new Error('boom');
      return {};
    });
    queue = new WorkQueue({ work: r.work, maxDelayMs: 60_000, errorRetryMs: 150, onError: (k, e) => errors.push(`${k}: ${(e as Error).message}`) });
    queue.add('a');
    await sleep(40);
    queue.add('a');
    await sleep(40);
    assert.equal(r.runs.length, 1, 'held after the throw');
    await sleep(200);
    assert.equal(r.runs.length, 2);
    assert.ok(r.runs[1]!.at >= 150);
    assert.deepEqual(errors, ['a: boom']);
  });

  it('forget drops a pending run; the key can be added again', async () => {
    const r = recorder();
    queue = new WorkQueue({ work: r.work, maxDelayMs: 60_000 });
    queue.add('a', 50);
    queue.forget('a');
    await sleep(120);
    assert.equal(r.runs.length, 0);
    queue.add('a', 10);
    await sleep(80);
    assert.equal(r.runs.length, 1);
  });

  it('shutDown cancels pending runs, waits for the one in flight and refuses adds', async () => {
    let finished = false;
    const r = recorder(async () => {
      await sleep(60);
      finished = true;
      return { requeueAfterMs: 0 };
    });
    queue = new WorkQueue({ work: r.work, maxDelayMs: 60_000 });
    queue.add('a');
    queue.add('b', 40);
    await sleep(10);
    await queue.shutDown();
    assert.ok(finished, 'shutDown returned before the run in flight finished');
    queue.add('a');
    await sleep(100);
    assert.deepEqual(r.runs.map((x) => x.key), ['a']);
  });
});
