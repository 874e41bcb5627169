/**
 * Lua scripts of the Redis issuance store. Each one is a single atomic step on
 * keys of ONE account (they share the `{a:<id>}` hash tag, so the scripts are
 * valid on Redis Cluster too). KEYS are always passed in, never built inside a
 * script. Journal entries go to the account's stream in the same step as the
 * balance change they describe.
 */
import { LuaScript } from './luaScript.js';

/** Shared Lua helpers. KEYS[1] = account hash, KEYS[2] = journal stream. */
const HELPERS = `
local function journal(kind, delta, bal, at, ref, note)
  if note then
    redis.call('XADD', KEYS[2], '*', 'type', kind, 'delta', delta, 'balance', bal, 'at', at, 'ref', ref, 'note', note)
  else
    redis.call('XADD', KEYS[2], '*', 'type', kind, 'delta', delta, 'balance', bal, 'at', at, 'ref', ref)
  end
end
local function quotaField(purpose, epoch)
  if purpose == 'transient' then return 'tr:' .. epoch end
  return 'perm'
end
local function giveBack(n, purpose, epoch, ref, at, note)
  if n <= 0 then return end
  if purpose == 'credit' then
    local bal = redis.call('HINCRBY', KEYS[1], 'balance', n)
    journal('issue_refund', n, bal, at, ref, note)
  else
    redis.call('HINCRBY', KEYS[1], quotaField(purpose, epoch), -n)
  end
end
`;

/**
 * Issuance record states (`{a:…}:idem:<request id>`): `pending` (debited,
 * signing), `done` (answer stored for retries), `aborted` (the sweeper gave the
 * debit back after the pod died; a retry reserves afresh).
 *
 * Abuse tokens need a paid purchase first (ARGV[10] 'purchase'): one whose
 * credits are not all reversed by refunds or disputes; with 'purchase_or_grant'
 * an admin grant counts too (the acct field `granted`, written by the grant script).
 *
 * KEYS: acct, journal, idem, purchases.
 * ARGV: requestId, bodyHash, purpose, epoch, count, quotaLimit, now, ttlMs, takeoverMs, abuseRequires.
 */
export const reserveIssuance = new LuaScript(`${HELPERS}
local function paidOnce()
  for _, raw in ipairs(redis.call('HVALS', KEYS[4])) do
    local ok, rec = pcall(cjson.decode, raw)
    if ok and rec.status == 'paid' and (tonumber(rec.reversed) or 0) < (tonumber(rec.credits) or 0) then return true end
  end
  return false
end
local st = redis.call('HMGET', KEYS[3], 'state', 'hash', 'at')
if st[1] then
  if st[2] ~= ARGV[2] then return {'conflict'} end
  if st[1] == 'done' then return {'replay'} end
  if st[1] == 'pending' then
    if tonumber(ARGV[7]) - tonumber(st[3]) < tonumber(ARGV[9]) then return {'in_progress'} end
    redis.call('HSET', KEYS[3], 'at', ARGV[7])
    return {'takeover'}
  end
end
local count = tonumber(ARGV[5])
local purpose = ARGV[3]
local bal = tonumber(redis.call('HGET', KEYS[1], 'balance') or '0')
if purpose == 'credit' then
  if bal < count then return {'insufficient', bal} end
  bal = redis.call('HINCRBY', KEYS[1], 'balance', -count)
  journal('issue', -count, bal, ARGV[7], ARGV[1], nil)
else
  local req = ARGV[10]
  if req ~= 'none' and not paidOnce() and not (req == 'purchase_or_grant' and redis.call('HEXISTS', KEYS[1], 'granted') == 1) then
    return {'unpaid'}
  end
  local field = quotaField(purpose, ARGV[4])
  local used = tonumber(redis.call('HGET', KEYS[1], field) or '0')
  local limit = tonumber(ARGV[6])
  if used + count > limit then return {'quota', used, limit} end
  redis.call('HINCRBY', KEYS[1], field, count)
end
redis.call('HSET', KEYS[3], 'state', 'pending', 'hash', ARGV[2], 'at', ARGV[7], 'count', count, 'purpose', purpose, 'epoch', ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[8])
return {'reserved', bal}
`);

/**
 * Returns 'ok', 'already' (another pod finished it) or 'aborted' (no longer
 * reserved: swept or expired — the answer must not be handed out).
 * KEYS: acct, journal, idem. ARGV: requestId, response bytes, failed, now, ttlMs.
 */
export const completeIssuance = new LuaScript(`${HELPERS}
local st = redis.call('HMGET', KEYS[3], 'state', 'purpose', 'epoch', 'count')
if st[1] == 'done' then return 'already' end
if st[1] ~= 'pending' then return 'aborted' end
local failed = math.min(tonumber(ARGV[3]), tonumber(st[4]))
giveBack(failed, st[2], st[3], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[3], 'state', 'done', 'resp', ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return 'ok'
`);

/** KEYS: acct, journal, idem. ARGV: requestId, now. */
export const abortIssuance = new LuaScript(`${HELPERS}
local st = redis.call('HMGET', KEYS[3], 'state', 'purpose', 'epoch', 'count')
if st[1] ~= 'pending' then return 'noop' end
giveBack(tonumber(st[4]), st[2], st[3], ARGV[1], ARGV[2], nil)
redis.call('DEL', KEYS[3])
return 'ok'
`);

/**
 * The sweeper's step for one request: a reservation still pending
 * `abandonedMs` after its last attempt gets its credits (or quota) back and is
 * marked aborted, in one step, so of several pods sweeping at once exactly one
 * refunds. Returns {'refunded', purpose, count}, {'fresh', at} or {'gone'}.
 * KEYS: acct, journal, idem. ARGV: requestId, now, abandonedMs.
 */
export const sweepReservation = new LuaScript(`${HELPERS}
local st = redis.call('HMGET', KEYS[3], 'state', 'purpose', 'epoch', 'count', 'at')
if st[1] ~= 'pending' then return {'gone'} end
if tonumber(ARGV[2]) - tonumber(st[5]) < tonumber(ARGV[3]) then return {'fresh', st[5]} end
giveBack(tonumber(st[4]), st[2], st[3], ARGV[1], ARGV[2], 'abandoned: the pod died before answering')
redis.call('HSET', KEYS[3], 'state', 'aborted')
return {'refunded', st[2], tonumber(st[4])}
`);

/**
 * Index of requests that may be pending (ZSET member "<account> <request id>",
 * score = time of the attempt), on its own slot. Updates are conditional on the
 * score the caller saw, so a newer attempt's entry is never removed by an older one.
 * KEYS: index. ARGV: member, expected score, new score ('' = remove).
 */
export const pendingIndexUpdate = new LuaScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == '' then redis.call('ZREM', KEYS[1], ARGV[1]) else redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
return 1
`);

/** KEYS: acct, journal. ARGV: credits, grantId, note, now. */
export const grant = new LuaScript(`${HELPERS}
local bal = redis.call('HINCRBY', KEYS[1], 'balance', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'granted', ARGV[1])
journal('grant', tonumber(ARGV[1]), bal, ARGV[4], ARGV[2], ARGV[3])
return bal
`);

/** KEYS: acct, journal, purchases, event marker. ARGV: sessionId, eventId, now, eventTtlMs, paymentIntent. */
export const applyPayment = new LuaScript(`${HELPERS}
if redis.call('EXISTS', KEYS[4]) == 1 then return {'duplicate_event'} end
local raw = redis.call('HGET', KEYS[3], ARGV[1])
if not raw then return {'unknown_session'} end
redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
local rec = cjson.decode(raw)
if rec.status == 'paid' then return {'already_paid'} end
rec.status = 'paid'
rec.paidAt = tonumber(ARGV[3])
if ARGV[5] ~= '' then rec.paymentIntent = ARGV[5] end
redis.call('HSET', KEYS[3], ARGV[1], cjson.encode(rec))
local bal = redis.call('HINCRBY', KEYS[1], 'balance', rec.credits)
journal('purchase', rec.credits, bal, ARGV[3], ARGV[1], 'event ' .. ARGV[2])
return {'credited', rec.credits, bal}
`);

/** KEYS: acct, journal, purchases, event marker. ARGV: sessionId, eventId, kind, targetCredits, now, eventTtlMs. */
export const applyReversal = new LuaScript(`${HELPERS}
if redis.call('EXISTS', KEYS[4]) == 1 then return {'duplicate_event'} end
local raw = redis.call('HGET', KEYS[3], ARGV[1])
if not raw then return {'unknown_session'} end
local rec = cjson.decode(raw)
-- Not credited yet (the payment event is being applied): not marked, so Stripe's redelivery applies it later.
if rec.status ~= 'paid' then return {'not_paid'} end
redis.call('SET', KEYS[4], '1', 'PX', ARGV[6])
local field = 'disputeTarget'
if ARGV[3] == 'refund' then field = 'refundTarget' end
local target = math.min(tonumber(ARGV[4]), rec.credits)
if (rec[field] or 0) < target then rec[field] = target end
local total = math.min(rec.credits, (rec.refundTarget or 0) + (rec.disputeTarget or 0))
local owed = total - (rec.reversed or 0)
if owed <= 0 then
  redis.call('HSET', KEYS[3], ARGV[1], cjson.encode(rec))
  return {'nothing_owed'}
end
local bal = tonumber(redis.call('HGET', KEYS[1], 'balance') or '0')
local debit = math.min(owed, bal)
rec.reversed = total
rec.reversedDebited = (rec.reversedDebited or 0) + debit
redis.call('HSET', KEYS[3], ARGV[1], cjson.encode(rec))
if debit > 0 then bal = redis.call('HINCRBY', KEYS[1], 'balance', -debit) end
journal('stripe_' .. ARGV[3], 0 - debit, bal, ARGV[5], ARGV[1], 'event ' .. ARGV[2] .. ': owed ' .. owed .. ', unspent debited ' .. debit)
return {'reversed', owed, debit, bal}
`);

/** KEYS: counter. ARGV: limit, windowMs, cost. Returns 1 if allowed. */
export const rateLimit = new LuaScript(`
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c >= tonumber(ARGV[1]) then return 0 end
if tonumber(ARGV[3]) > 0 then
  redis.call('INCRBY', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
end
return 1
`);
