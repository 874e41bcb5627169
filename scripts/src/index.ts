export { startRedis, freePort, type RedisHandle, type StartRedisOptions } from './redisServer.js';
