//! The shared session store: Redis through one multiplexed, self-reconnecting connection.
//!
//! Every key is `{prefix}{key}`; an index is a sorted set at `{prefix}{index}` (so index names
//! share the key namespace) whose members are logical keys scored by their expiry in Unix
//! milliseconds of the Redis server's clock. Multi-key operations run as Lua scripts so each is
//! atomic; the scripts build member keys from the prefix, which is fine on a single server or
//! Sentinel but not on Cluster.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, ErrorKind, RedisError, RedisResult, Script, Value};

use super::{SessionStore, StoreError};

/// TTLs are capped so that Redis never rejects `now + ttl` as an overflow.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 60 * 60 * 1000;

/// Reconnect attempts after the first, per reconnect.
const RECONNECT_RETRIES: usize = 2;

/// INCR, then set the window only on a counter INCR just created, so later hits (and a hit
/// after a decrement to zero) keep the original expiry.
const INCREMENT: &str = r"
local count = redis.call('INCR', KEYS[1])
-- Only a counter INCR just created has no expiry; one taken back to zero keeps its window.
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
";

/// KEYS[1] = counter key. DECR only a live counter above zero; the expiry is untouched.
const DECREMENT: &str = r"
local count = tonumber(redis.call('GET', KEYS[1]))
if count and count > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
";

/// KEYS[1] = holders key; ARGV[1] = TTL in milliseconds, renewed by every holder.
const HOLD: &str = r"
local count = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return count
";

/// KEYS[1] = holders key. One fewer; the key goes with the last one.
const RELEASE: &str = r"
local count = tonumber(redis.call('GET', KEYS[1]))
if count and count > 1 then
  redis.call('DECR', KEYS[1])
elseif count then
  redis.call('DEL', KEYS[1])
end
return 0
";

/// KEYS[1] = limit key; ARGV = now, interval, burst (microseconds). GCRA as in
/// `sessions::gcra`: `{1, ahead}` when the request passes (and the new theoretical arrival
/// time, `ahead` of now, is stored until it passes), else `{0, microseconds to wait}`. Lua numbers are doubles: exact for
/// microsecond timestamps for the next quarter-million years.
const THROTTLE: &str = r"
local now = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then tat = now end
local ahead = tat + tonumber(ARGV[2]) - now
if ahead > tonumber(ARGV[3]) then
  return {0, ahead - tonumber(ARGV[3])}
end
redis.call('SET', KEYS[1], string.format('%d', now + ahead), 'PX', math.max(1, math.ceil(ahead / 1000)))
return {1, ahead}
";

/// KEYS[1] = member key, KEYS[2] = index key; ARGV = value, ttl ms, logical member name.
/// The index expires with its longest-lived member.
const PUT_INDEXED: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], last[2])
return 1
";

/// KEYS[1] = index key; ARGV[1] = key prefix. Drops members whose recorded expiry has passed,
/// then members whose key is gone (deleted, taken, or rewritten with a shorter TTL).
const INDEX_MEMBERS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local live = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('EXISTS', ARGV[1] .. member) == 1 then
    table.insert(live, member)
  else
    redis.call('ZREM', KEYS[1], member)
  end
end
return live
";

/// KEYS[1] = index key; ARGV[1] = key prefix. DEL of an expired key returns 0, so the count is
/// of live members only.
const DELETE_INDEX: &str = r"
local deleted = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  deleted = deleted + redis.call('DEL', ARGV[1] .. member)
end
redis.call('DEL', KEYS[1])
return deleted
";

/// A [`SessionStore`] over Redis. Cloning shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    increment: Script,
    decrement: Script,
    hold: Script,
    release: Script,
    put_indexed: Script,
    index_members: Script,
    delete_index: Script,
    throttle: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` and checks the server answers `PING`, all within `connect_timeout`;
    /// the error names the URL with any password replaced. Without the timeout the connection
    /// manager would keep retrying a server that is down. Once connected, a dropped connection
    /// is re-established in the background.
    pub async fn connect(url: &str, key_prefix: &str, connect_timeout: Duration) -> Result<Self, StoreError> {
        let shown = crate::config::UrlWithPassword::new(url).redacted();
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL {shown}: {e}")))?;
        // The manager's default (six reconnect attempts with exponential backoff) makes every
        // call wait ~5 s while Redis is down; callers fail closed, so they should fail fast. The
        // next call after a failed reconnect starts a new one.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(Duration::from_millis(500));
        let connecting = async {
            let mut connection = ConnectionManager::new_with_config(client, config).await?;
            redis::cmd("PING").query_async::<String>(&mut connection).await?;
            Ok::<_, RedisError>(connection)
        };
        let connection = match tokio::time::timeout(connect_timeout, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot connect to Redis at {shown}: {}",
                    describe(&e)
                )));
            }
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "Redis at {shown} did not answer within {connect_timeout:?}"
                )));
            }
        };
        Ok(Self {
            connection,
            prefix: key_prefix.to_owned(),
            increment: Script::new(INCREMENT),
            decrement: Script::new(DECREMENT),
            hold: Script::new(HOLD),
            release: Script::new(RELEASE),
            put_indexed: Script::new(PUT_INDEXED),
            index_members: Script::new(INDEX_MEMBERS),
            delete_index: Script::new(DELETE_INDEX),
            throttle: Script::new(THROTTLE),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// Runs `op` once more if it fails with an I/O error: after a Redis restart the first
    /// command on the old connection fails (broken pipe) and triggers the reconnect that the
    /// second one waits for. Repeating a command whose reply was lost can only make the result
    /// stricter (a counter one higher, a marker or code already present or already taken), never
    /// let two callers win.
    async fn with_retry<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let result = match op(self.connection.clone()).await {
            Err(e) if e.is_io_error() => {
                tracing::warn!(command = what, error = %describe(&e), "Redis I/O error; retrying once");
                op(self.connection.clone()).await
            }
            other => other,
        };
        result.map_err(|e| StoreError::Unavailable(format!("Redis {what}: {}", describe(&e))))
    }

    async fn query<T: redis::FromRedisValue>(&self, what: &'static str, cmd: &Cmd) -> Result<T, StoreError> {
        self.with_retry(what, |mut connection| async move { cmd.query_async::<T>(&mut connection).await })
            .await
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        what: &'static str,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.with_retry(
            what,
            |mut connection| async move { invocation.invoke_async::<T>(&mut connection).await },
        )
        .await
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("PX").arg(ttl_ms(ttl));
        self.query::<()>("SET", &cmd).await
    }

    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("NX").arg("PX").arg(ttl_ms(ttl));
        // OK when set, nil when the key already holds a live value.
        let reply: Value = self.query("SET NX", &cmd).await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(key));
        self.query("GET", &cmd).await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(key));
        let deleted: u64 = self.query("DEL", &cmd).await?;
        Ok(deleted > 0)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GETDEL");
        cmd.arg(self.key(key));
        self.query("GETDEL", &cmd).await
    }

    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let mut invocation = self.increment.prepare_invoke();
        invocation.key(self.key(key)).arg(ttl_ms(ttl));
        self.invoke("increment script", &invocation).await
    }

    async fn decrement(&self, key: &str) -> Result<(), StoreError> {
        let mut invocation = self.decrement.prepare_invoke();
        invocation.key(self.key(key));
        self.invoke::<i64>("decrement script", &invocation).await.map(|_| ())
    }

    async fn hold(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let mut invocation = self.hold.prepare_invoke();
        invocation.key(self.key(key)).arg(ttl_ms(ttl));
        self.invoke("hold script", &invocation).await
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let mut invocation = self.release.prepare_invoke();
        invocation.key(self.key(key));
        self.invoke::<i64>("release script", &invocation).await.map(|_| ())
    }

    async fn put_indexed(
        &self,
        index: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut invocation = self.put_indexed.prepare_invoke();
        invocation.key(self.key(key)).key(self.key(index)).arg(value).arg(ttl_ms(ttl)).arg(key);
        self.invoke::<()>("put_indexed script", &invocation).await
    }

    async fn index_members(&self, index: &str) -> Result<Vec<String>, StoreError> {
        let mut invocation = self.index_members.prepare_invoke();
        invocation.key(self.key(index)).arg(&self.prefix);
        self.invoke("index_members script", &invocation).await
    }

    async fn delete_index(&self, index: &str) -> Result<u64, StoreError> {
        let mut invocation = self.delete_index.prepare_invoke();
        invocation.key(self.key(index)).arg(&self.prefix);
        self.invoke("delete_index script", &invocation).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let cmd = redis::cmd("PING");
        self.query::<String>("PING", &cmd).await.map(drop)
    }

    async fn throttle(
        &self,
        key: &str,
        now_us: i64,
        interval_us: i64,
        burst_us: i64,
    ) -> Result<super::Throttle, StoreError> {
        let mut invocation = self.throttle.prepare_invoke();
        invocation.key(self.key(key)).arg(now_us).arg(interval_us).arg(burst_us);
        let (passed, micros): (i64, i64) = self.invoke("throttle script", &invocation).await?;
        let d = Duration::from_micros(u64::try_from(micros).unwrap_or(0));
        Ok(if passed == 1 {
            super::Throttle::Passed { ahead: d }
        } else {
            super::Throttle::Refused { wait: d }
        })
    }

    async fn usage(&self) -> Result<Option<super::Usage>, StoreError> {
        let mut cmd = redis::cmd("INFO");
        cmd.arg("memory");
        let info = self.query::<String>("INFO", &cmd).await?;
        Ok(parse_memory_info(&info))
    }
}

/// `used_memory` against `maxmemory` from `INFO memory`, when running out means refused
/// writes: `None` without a `maxmemory` (Redis then grows until the machine runs out, which
/// the operator must watch instead) or under an eviction policy (a full Redis evicts, and sits
/// at its limit in normal operation).
fn parse_memory_info(info: &str) -> Option<super::Usage> {
    let text = |name: &str| info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim));
    let field = |name: &str| text(name)?.parse::<u64>().ok();
    if text("maxmemory_policy").is_some_and(|p| p != "noeviction") {
        return None;
    }
    let limit = field("maxmemory").filter(|&m| m > 0)?;
    Some(super::Usage { used: field("used_memory")?, limit, per_instance: false })
}

/// Milliseconds for `PX`: the trait contract makes zero one millisecond, and Redis rejects 0.
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).clamp(1, MAX_TTL_MS)
}

/// An error's text without reply contents: a type-mismatch error quotes the reply, which could
/// be a stored value.
fn describe(e: &RedisError) -> String {
    match e.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => {
            format!("unexpected reply ({})", e.category())
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_at_least_one_millisecond() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_micros(500)), 1);
        assert_eq!(ttl_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(ttl_ms(Duration::MAX), MAX_TTL_MS);
    }

    #[test]
    fn memory_usage_counts_only_under_a_maxmemory() {
        let info = "# Memory\r\nused_memory:950\r\nused_memory_human:950B\r\nmaxmemory:1000\r\n\
                    maxmemory_policy:noeviction\r\n";
        let u = parse_memory_info(info).unwrap();
        assert_eq!((u.used, u.limit, u.per_instance), (950, 1000, false));
        assert!(u.near_full());
        assert!(!super::super::Usage { used: 899, limit: 1000, per_instance: false }.near_full());
        assert_eq!(parse_memory_info("used_memory:950\r\nmaxmemory:0\r\n"), None);
        assert_eq!(parse_memory_info("used_memory_peak:1\r\nmaxmemory_policy:noeviction\r\n"), None);
        let evicting = "used_memory:999\r\nmaxmemory:1000\r\nmaxmemory_policy:allkeys-lru\r\n";
        assert_eq!(parse_memory_info(evicting), None, "an evicting Redis is full by design");
    }

    #[tokio::test]
    async fn connecting_to_a_closed_port_fails_fast_and_names_the_redacted_url() {
        // Bind then drop a listener so the port is very likely closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let url = format!("redis://:hunter2@127.0.0.1:{port}");
        let started = std::time::Instant::now();
        let err = RedisStore::connect(&url, "p:", Duration::from_millis(500)).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        let message = err.to_string();
        assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
