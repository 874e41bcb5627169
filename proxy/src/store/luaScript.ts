/** A Lua script run with EVALSHA, falling back to EVAL once when the server does not have it cached (restart, failover). */
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

export type RedisClient = Redis | Cluster;
type Arg = string | number | Buffer;

export class LuaScript {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run<T = unknown>(redis: RedisClient, keys: readonly string[], args: readonly Arg[]): Promise<T> {
    try {
      return (await redis.evalsha(this.sha, keys.length, ...keys, ...args)) as T;
    } catch (e) {
      if (!(e instanceof Error) || !e.message.includes('NOSCRIPT')) throw e;
      return (await redis.eval(this.source, keys.length, ...keys, ...args)) as T;
    }
  }
}
