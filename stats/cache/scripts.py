"""The Lua scripts the cache runs in Redis (each one atomic), and how they are sent."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis.exceptions import NoScriptError, ResponseError


@dataclass(frozen=True)
class Lua:
    source: str
    sha: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


# A state outlives its value (see `maintain`): twice the value's TTL, and at least an hour, longer
# than common sensors' reporting interval (5 to 20 minutes), so that the next reading of a unit
# rebuilds its expired trend from the state instead of recomputing 24 h from the database. The
# organization's index lives as long as the states it lists, so that invalidating the
# organization deletes them too.
STATE_MIN_SECONDS = 3600


def _state_ttl_lua(ttl_argv: int) -> str:
    """A state's lifetime in seconds, in Lua, for a value whose TTL in ms is ARGV[ttl_argv]."""
    return f"math.max(2 * math.ceil(tonumber(ARGV[{ttl_argv}]) / 1000), {STATE_MIN_SECONDS})"


# KEYS: value key, index key, state key, the value's generation key, generation keys to check...;
# ARGV: value, ttl (ms), state ('' for none), generation ttl, then the generation expected of each
# key from KEYS[5] on. Stores the value (and the state a change updates it from) only if no
# generation moved since the computation began. Storing a state moves the value's own generation
# (storing none deletes the state): either way an update in place that read the key before the
# store writes nothing (`MAINTAIN_WRITE`).
CAS_SET = Lua(
    """
for i = 5, #KEYS do
  if (redis.call('GET', KEYS[i]) or '0') ~= ARGV[i] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local lives = math.ceil(tonumber(ARGV[2]) / 1000)
if ARGV[3] ~= '' then
  lives = STATE_TTL
  redis.call('SET', KEYS[3], ARGV[3], 'EX', lives)
  redis.call('INCR', KEYS[4])
  redis.call('EXPIRE', KEYS[4], ARGV[4])
else
  redis.call('DEL', KEYS[3])
end
if KEYS[2] ~= '' then
  redis.call('SADD', KEYS[2], KEYS[1])
  if redis.call('TTL', KEYS[2]) < lives then redis.call('EXPIRE', KEYS[2], lives) end
end
return 1
""".replace("STATE_TTL", _state_ttl_lua(2))
)

# KEYS: triples of (value key, its state key, its generation key); ARGV: generation ttl, then per
# triple 'keep' to keep its state (a value to be rebuilt from it). Returns, per value key, 1 if it
# was deleted (it existed), else 0.
DELETE_AND_BUMP = Lua(
    """
local deleted = {}
for i = 1, #KEYS, 3 do
  deleted[#deleted + 1] = redis.call('DEL', KEYS[i])
  if ARGV[(i + 2) / 3 + 1] ~= 'keep' then redis.call('DEL', KEYS[i + 1]) end
  redis.call('INCR', KEYS[i + 2])
  redis.call('EXPIRE', KEYS[i + 2], ARGV[1])
end
return deleted
"""
)

# KEYS: index key, org generation key; ARGV: generation ttl, the state keys' prefix. Deletes every
# indexed key and its state. Returns keys deleted.
INVALIDATE_INDEXED = Lua(
    """
local deleted = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  deleted = deleted + redis.call('DEL', key)
  redis.call('DEL', ARGV[2] .. key)
end
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return deleted
"""
)

# KEYS: value key, state key, generation key; ARGV: generation ttl. A change about to update a
# value in place reads it with its state and its generation: {value or false, state, generation}.
# Without a state the key is invalidated instead (deleted, generation bumped: no computation in
# flight may store a value from before the change) and the reply says whether a value was cached:
# {1} or {0}.
MAINTAIN_READ = Lua(
    """
local value = redis.call('GET', KEYS[1])
local state = redis.call('GET', KEYS[2])
if state then return {value or false, state, redis.call('GET', KEYS[3]) or '0'} end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[1])
if value then return {1} end
return {0}
"""
)

# KEYS: value key, state key, generation key, index key, then the keys of values that are fields
# of this one (`part_of`); ARGV: the generation read, new value ('' to leave it absent: only the
# state is updated), new state, ttl (ms), generation ttl. Writes only if the state still exists and
# the generation is still the one read (else 0: read again): every write of the value or its state
# moves the generation (a store with a state, another update, an invalidation) or deletes the
# state (a store without one, an invalidation of the whole organization). Comparing the state
# alone was not enough: a value rebuilt from the very state read (same bytes) and stored meanwhile
# would be left beside the new state without the change. Bumps the generation, so a computation
# that began before the change stores nothing. A part that has used half its TTL lives as long as
# the value again: no change that alters it came (it would have deleted it), so it still equals the
# value's field. (Only then: every expire tells the tracked copies.)
MAINTAIN_WRITE = Lua(
    """
if redis.call('EXISTS', KEYS[2]) == 0 or (redis.call('GET', KEYS[3]) or '0') ~= ARGV[1] then return 0 end
local lives = STATE_TTL
if ARGV[2] ~= '' then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4]) end
redis.call('SET', KEYS[2], ARGV[3], 'EX', lives)
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[5])
redis.call('SADD', KEYS[4], KEYS[1])
if redis.call('TTL', KEYS[4]) < lives then redis.call('EXPIRE', KEYS[4], lives) end
if ARGV[2] ~= '' then
  for i = 5, #KEYS do
    local left = redis.call('PTTL', KEYS[i])
    if left >= 0 and left < tonumber(ARGV[4]) / 2 then redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
  end
end
return 1
""".replace("STATE_TTL", _state_ttl_lua(4))
)

# KEYS: session key, value key; ARGV: principal key prefix. The principal's key is read from the
# session (JSON-serialized by the sessions cache), so a signed-in cached read is one round trip.
# Returns {session, user id, principal, value, the value's TTL left in ms}, each false (nil) when
# absent: the caller checks that the user id is the one it reads from the session itself before
# trusting the principal.
SESSION_READ = Lua(
    """
local session = redis.call('GET', KEYS[1])
if not session then return {false, false, false, false, false} end
local ok, data = pcall(cjson.decode, session)
local user_id = ok and type(data) == 'table' and data['_auth_user_id']
if type(user_id) ~= 'string' or #user_id > 18 or not string.match(user_id, '^[0-9]+$') then
  return {session, false, false, false, false}
end
local principal = redis.call('GET', ARGV[1] .. user_id)
return {session, user_id, principal, redis.call('GET', KEYS[2]), redis.call('PTTL', KEYS[2])}
"""
)

RELEASE_LOCK = Lua(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
)


def run(client, script: Lua, keys: list[str], args: list[object]):
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return client.eval(script.source, len(keys), *keys, *args)


def run_all(client, calls: list[tuple[Lua, list[str], list[object]]]) -> list:
    """Several scripts in one round trip: a pipeline, not a transaction (each script is atomic on
    its own). A script the server does not hold yet is sent whole, alone, once."""
    pipe = client.pipeline(transaction=False)
    for script, keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    results = pipe.execute(raise_on_error=False)
    for i, result in enumerate(results):
        if isinstance(result, NoScriptError):
            script, keys, args = calls[i]
            results[i] = client.eval(script.source, len(keys), *keys, *args)
        elif isinstance(result, Exception):
            raise result
    return results


def call_direct(client, *args: object):
    """One command on one of the client's pooled connections, without redis-py's per-command
    machinery (retry wrapper, observability hooks, response callbacks): for the fast path's one
    call, where that machinery cost as much as the socket calls (bench/RESULTS.md). Errors are
    redis-py's own exceptions. A pooled connection the server closed is reconnected by the pool
    itself when handed out; a failure after that is the caller's to handle (the lane passes)."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command(connection.pack_command(*args))
        return connection.read_response()
    except ResponseError:  # an error reply, read whole: the connection is fine
        raise
    except BaseException:
        connection.disconnect()  # nothing half-read stays in the pool
        raise
    finally:
        pool.release(connection)


def run_direct(client, script: Lua, keys: list[str], args: list[object]):
    try:
        return call_direct(client, "EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return call_direct(client, "EVAL", script.source, len(keys), *keys, *args)
