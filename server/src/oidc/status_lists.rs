//! Token status lists (draft-ietf-oauth-status-list): every access token names an index in
//! its client's list, and `GET /statuslists/{client_id}/{n}` serves that list as a signed
//! `statuslist+jwt`, so a resource server that validates tokens locally also learns of a
//! suspension, a revocation, a disabled account or a reset campaign without introspection.
//!
//! **Indexes.** Each client's indexes are handed out in blocks of [`BLOCK`]: an instance
//! takes a block (one small database transaction) and numbers its tokens from it in memory.
//! It stops using a block once the client's `tokens_valid_after` has moved past the moment it
//! took it (a suspension or resume, seen through the client cache), or after
//! [`BLOCK_MAX_AGE`]. So every token of a block taken before a client's cut-off was issued
//! before it, and the list sets such blocks whole: a suspension flips a million bits without
//! knowing a single token. A suspended client's list is all ones.
//!
//! **Entries.** A person's token is recorded (list, index, account, login time) in the
//! transaction that stores its refresh token; the list sets it when the account is disabled or
//! cut off after that login (a campaign). A revoked token is recorded at `/revoke`, or marked
//! when its refresh-token family or login is revoked.
//!
//! **Serving.** A list is built from the database (three indexed queries, compression, one
//! ES256 signature) and kept per instance. It is rebuilt when the client epoch moves or this
//! instance revoked one of the client's tokens, and at most [`REBUILD_AFTER`] after it was
//! built, so a change made anywhere (another instance, the CLI, a campaign) is in the served
//! list within a second; a resource server sees it within the list's `ttl` after that. The
//! JWT is re-signed only when its bits or the signing key change (or half its life has
//! passed), and its weak `ETag` is a digest of key and bits, the same on every instance, so a
//! verifier's conditional request is a 304 whichever instance answers.
//!
//! **Cost of junk.** An unknown client id costs no query (the client cache remembers unknown
//! ids); a list that has not started costs one query per client per [`NOT_STARTED_FOR`] and
//! holds no memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::http::header::{self, IfNoneMatch};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::Issuer;
use super::jwks::not_modified;
use super::status_list::{ListClaim, ListTokenClaims, MEDIA_TYPE, StatusBits, StatusClaim, StatusRef, TYP};
use crate::domain::{Client, ClientId};
use crate::limits::Limit;
use crate::state::{AppState, Core};
use crate::store::DbError;
use crate::store::status_lists::{self, ListLookup, ListState, Place};

/// Indexes per block.
pub const BLOCK: i64 = 1024;
/// Blocks per list: a list holds 1,048,576 tokens, 199 characters of `lst` while all of them
/// are valid. A client that issues more moves on to its next list.
pub const BLOCKS_PER_LIST: i64 = 1024;
/// Tokens per list.
pub const LIST_LEN: i64 = BLOCK * BLOCKS_PER_LIST;
/// An instance takes a new block at least this often, so old blocks can be forgotten.
pub const BLOCK_MAX_AGE: chrono::Duration = chrono::Duration::hours(1);
/// A served list is rebuilt at most this long after it was built.
pub const REBUILD_AFTER: Duration = Duration::from_secs(1);
/// A list token's life (`exp - iat`): a resource server cut off from Pramaan keeps using its
/// last list this long at most. Re-signed when half of it has passed.
pub const LIST_VALIDITY_SECS: i64 = 86_400;

/// The path lists are served under.
pub const PATH: &str = "/statuslists";

/// Bounds on remembered clients and lists; at a bound, that map starts over.
const MAX_CLIENTS: usize = 100_000;
const MAX_LISTS: usize = 10_000;

/// The URI of list `list_no` of `client_id` under `issuer`.
pub fn list_uri(issuer: &str, client_id: &str, list_no: i64) -> String {
    format!("{issuer}{PATH}/{client_id}/{list_no}")
}

/// Where the `status` claim of a token says it sits, when it names one of this issuer's lists
/// of `client_id` (what `/revoke` trusts, after verifying the token's signature).
pub fn place_of(issuer: &str, client_id: &str, status: &StatusClaim) -> Option<Place> {
    let rest = status.status_list.uri.strip_prefix(issuer)?.strip_prefix(PATH)?.strip_prefix('/')?;
    let (client, list) = rest.split_once('/')?;
    let list_no: i64 = list.parse().ok()?;
    let idx = i64::try_from(status.status_list.idx).ok()?;
    (client == client_id && list_no >= 0 && (0..LIST_LEN).contains(&idx)).then(|| Place {
        client_id: client.to_owned(),
        list_no,
        idx,
    })
}

/// The instant before which a block counts as taken before the cut-off `cut_off`: the start
/// of the next whole second. Token `iat`s are whole seconds and introspection compares them
/// with the cut-off, so every token issued in the cut-off's own second is invalid there too.
pub fn cut_blocks_before(cut_off: DateTime<Utc>) -> DateTime<Utc> {
    let floor = cut_off.timestamp();
    let whole = DateTime::from_timestamp(floor, 0).unwrap_or(cut_off);
    if whole == cut_off { whole } else { DateTime::from_timestamp(floor + 1, 0).unwrap_or(cut_off) }
}

/// A block in use by this instance.
#[derive(Debug, Clone, Copy)]
struct Block {
    block_no: i64,
    taken_at: DateTime<Utc>,
    next: i64,
}

impl Block {
    /// The next index of this block, if it may still hand one out now to a client whose
    /// cut-off is `cut_off`. A block the list cuts (taken before [`cut_blocks_before`]) is
    /// used only while tokens issued now are invalid anyway: within the cut-off's second, or
    /// while this instance's clock is behind the one that set the cut-off.
    fn take(&mut self, cut_off: DateTime<Utc>, now: DateTime<Utc>) -> Option<i64> {
        let cut = cut_blocks_before(cut_off);
        let fits = self.taken_at >= cut || now < cut;
        if self.next >= BLOCK || !fits || now - self.taken_at >= BLOCK_MAX_AGE {
            return None;
        }
        let global = self.block_no * BLOCK + self.next;
        self.next += 1;
        Some(global)
    }
}

#[derive(Default)]
struct ClientBlocks {
    current: Mutex<Option<Block>>,
    /// One refill at a time per client.
    refill: tokio::sync::Mutex<()>,
}

/// A built list.
struct Built {
    body: web::Bytes,
    /// A digest of key, `iat` and bits. Every instance signs a list with the same `iat` (the
    /// start of the current half-validity window), so the same list has the same tag on every
    /// instance (a verifier behind a load balancer gets its 304s), and a re-signed one a new tag.
    /// Weak: ECDSA signatures differ between instances.
    etag: String,
    /// What it was built from (an unchanged state is not compressed again).
    state: ListState,
    kid: String,
    iat: i64,
    /// When its state was read, and the epoch and slot generation then.
    read: Instant,
    epoch: i64,
    generation: u64,
}

/// A client's id and a list number.
type ListKey = (String, i64);

#[derive(Default)]
struct Slot {
    built: RwLock<Option<Arc<Built>>>,
    rebuild: tokio::sync::Mutex<()>,
    /// Moved when this instance changes the list (a revocation): a list built from a state
    /// read before is stale.
    generation: AtomicU64,
}

/// How many blocks a client had taken, as last read, and when.
type Known = (i64, Instant);

/// This instance's index blocks and built lists. Cheap to clone.
#[derive(Clone, Default)]
pub struct StatusLists {
    blocks: Arc<Mutex<HashMap<String, Arc<ClientBlocks>>>>,
    lists: Arc<Mutex<HashMap<ListKey, Arc<Slot>>>>,
    /// Per client: how far its lists go, so a request for a list that does not exist yet
    /// costs no query (within [`NOT_STARTED_FOR`]).
    known: Arc<Mutex<HashMap<String, Known>>>,
}

/// How long "this list has not started" is believed.
const NOT_STARTED_FOR: Duration = Duration::from_millis(100);

/// Why no index could be given.
#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("no usable status-list block")]
    Exhausted,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StatusLists {
    /// An index for a token of `client` issued now, the `status` claim naming it, and the
    /// instant it was given at, which must be the token's `iat` (whether its block counts as
    /// cut depends on that instant, as introspection judges the token by its `iat`).
    pub async fn assign(
        &self,
        core: &Core,
        issuer: &str,
        client: &Client,
    ) -> Result<(StatusClaim, Place, DateTime<Utc>), AssignError> {
        let entry = {
            let mut blocks = locked(&self.blocks);
            if blocks.len() >= MAX_CLIENTS && !blocks.contains_key(client.id.as_str()) {
                blocks.clear();
            }
            blocks.entry(client.id.as_str().to_owned()).or_default().clone()
        };
        let cut_off = client.tokens_valid_after;
        let take = |now: DateTime<Utc>| locked(&entry.current).as_mut().and_then(|b| b.take(cut_off, now));
        // Two tries: a block just taken can only be unusable if the clock jumped.
        for _ in 0..2 {
            let now = crate::clock::truncate_micros(core.clock.now());
            if let Some(global) = take(now) {
                return Ok(claim(issuer, client, global, now));
            }
            let _one = entry.refill.lock().await;
            // The wait may have been long: the instant is taken again.
            let now = crate::clock::truncate_micros(core.clock.now());
            if let Some(global) = take(now) {
                return Ok(claim(issuer, client, global, now));
            }
            let forget_before = now - BLOCK_MAX_AGE - horizon(core);
            let id = client.id.as_str().to_owned();
            let block_no = core.db.run(move |c| status_lists::take_block(c, &id, now, forget_before)).await?;
            *locked(&entry.current) = Some(Block { block_no, taken_at: now, next: 0 });
            self.learn(client.id.as_str(), block_no + 1);
        }
        Err(AssignError::Exhausted)
    }

    /// Makes this instance rebuild the lists of `clients` at their next request (it changed
    /// them).
    pub fn changed(&self, clients: &[String]) {
        let lists = locked(&self.lists);
        for ((client, _), slot) in lists.iter() {
            if clients.contains(client) {
                slot.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    fn learn(&self, client_id: &str, next_block: i64) {
        let mut known = locked(&self.known);
        if known.len() >= MAX_CLIENTS && !known.contains_key(client_id) {
            known.clear();
        }
        let e = known.entry(client_id.to_owned()).or_insert((next_block, Instant::now()));
        *e = (e.0.max(next_block), Instant::now());
    }

    /// Whether list `list_no` of `client_id` was recently seen not to exist yet.
    fn surely_not_started(&self, client_id: &str, list_no: i64) -> bool {
        locked(&self.known).get(client_id).is_some_and(|(next, read)| {
            read.elapsed() < NOT_STARTED_FOR && list_no.saturating_mul(BLOCKS_PER_LIST) >= *next
        })
    }

    /// The list, from this instance's copy while it is current, else built again; `None` when
    /// the client has no such list.
    async fn get(
        &self,
        state: &AppState,
        issuer: &str,
        client_id: &str,
        list_no: i64,
    ) -> Result<Option<Arc<Built>>, DbError> {
        let key = (client_id.to_owned(), list_no);
        let existing = locked(&self.lists).get(&key).cloned();
        let current = |slot: &Slot| {
            let generation = slot.generation.load(Ordering::Acquire);
            let built = slot.built.read().unwrap_or_else(|p| p.into_inner());
            built
                .as_ref()
                .filter(|b| {
                    b.read.elapsed() < REBUILD_AFTER
                        && b.epoch == state.clients.epoch()
                        && b.generation == generation
                })
                .cloned()
        };
        if let Some(b) = existing.as_deref().and_then(current) {
            return Ok(Some(b));
        }
        if existing.is_none() && self.surely_not_started(client_id, list_no) {
            return Ok(None);
        }
        let slot = {
            let mut lists = locked(&self.lists);
            if lists.len() >= MAX_LISTS && !lists.contains_key(&key) {
                lists.clear();
            }
            lists.entry(key.clone()).or_default().clone()
        };
        let _one = slot.rebuild.lock().await;
        if let Some(b) = current(&slot) {
            return Ok(Some(b));
        }
        // Read before the database: a change landing meanwhile moves them again.
        let (read, epoch, generation) =
            (Instant::now(), state.clients.epoch(), slot.generation.load(Ordering::Acquire));
        let previous = slot.built.read().unwrap_or_else(|p| p.into_inner()).clone();
        let core = &state.core;
        let now = core.clock.now();
        let id = client_id.to_owned();
        let found = core
            .db
            .run(move |c| status_lists::list_state(c, &id, list_no, BLOCKS_PER_LIST, now, cut_blocks_before))
            .await;
        let list = match found? {
            ListLookup::Found(list) => list,
            ListLookup::NotStarted { next_block } => {
                self.forget_slot(&key, &slot);
                self.learn(client_id, next_block);
                return Ok(None);
            }
            ListLookup::NoClient => {
                self.forget_slot(&key, &slot);
                return Ok(None);
            }
        };
        self.learn(client_id, list.next_block);
        let stamp = Stamp { read, epoch, generation };
        let built =
            Arc::new(build(core, issuer, client_id, list_no, list, previous.as_deref(), stamp).await?);
        *slot.built.write().unwrap_or_else(|p| p.into_inner()) = Some(built.clone());
        Ok(Some(built))
    }

    /// Drops the slot of a list that does not exist (so junk requests hold no memory).
    fn forget_slot(&self, key: &ListKey, slot: &Arc<Slot>) {
        let mut lists = locked(&self.lists);
        if lists.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            lists.remove(key);
        }
    }
}

fn claim(
    issuer: &str,
    client: &Client,
    global: i64,
    at: DateTime<Utc>,
) -> (StatusClaim, Place, DateTime<Utc>) {
    let place = Place {
        client_id: client.id.as_str().to_owned(),
        list_no: global / LIST_LEN,
        idx: global % LIST_LEN,
    };
    let uri = list_uri(issuer, &place.client_id, place.list_no);
    let idx = u64::try_from(place.idx).unwrap_or(0);
    (StatusClaim { status_list: StatusRef { idx, uri } }, place, at)
}

/// How long after a block stops being used its tokens may still be alive.
fn horizon(core: &Core) -> chrono::Duration {
    let secs = i64::try_from(core.settings.tokens.max_token_lifetime_secs).unwrap_or(i64::MAX / 2);
    chrono::Duration::seconds(secs.min(10 * 365 * 86_400)) + chrono::Duration::hours(1)
}

/// The bits of a list in `s`.
pub fn bits_of(s: &ListState) -> StatusBits {
    let len = usize::try_from(LIST_LEN).unwrap_or(0);
    let mut bits = StatusBits::new(len);
    if s.suspended {
        bits.set_range(0, len);
        return bits;
    }
    for b in &s.blocks_cut_off {
        if let (Ok(start), Ok(n)) = (usize::try_from(b * BLOCK), usize::try_from(BLOCK)) {
            bits.set_range(start, start + n);
        }
    }
    for i in &s.invalid {
        if let Ok(i) = usize::try_from(*i)
            && i < len
        {
            bits.set_range(i, i + 1);
        }
    }
    bits
}

/// When a list's state was read.
struct Stamp {
    read: Instant,
    epoch: i64,
    generation: u64,
}

async fn build(
    core: &Core,
    issuer: &str,
    client_id: &str,
    list_no: i64,
    state: ListState,
    previous: Option<&Built>,
    stamp: Stamp,
) -> Result<Built, DbError> {
    let key =
        core.keyring.access_token_key().ok_or_else(|| DbError::Pool("no access-token signing key".into()))?;
    // Never longer than a retired key stays in the JWKS, so a list always verifies; signed
    // with the `iat` of the current half-validity window, the same on every instance.
    let validity = i64::try_from(core.settings.tokens.max_token_lifetime_secs)
        .unwrap_or(i64::MAX)
        .clamp(2, LIST_VALIDITY_SECS);
    let now = core.clock.now().timestamp();
    let iat = now - now.rem_euclid(validity / 2);
    let Stamp { read, epoch, generation } = stamp;
    // Nothing changed: the same body (and no compression of a million bits).
    if let Some(p) = previous
        && p.state == state
        && p.kid == key.kid()
        && p.iat == iat
    {
        return Ok(Built {
            body: p.body.clone(),
            etag: p.etag.clone(),
            state,
            kid: p.kid.clone(),
            iat,
            read,
            epoch,
            generation,
        });
    }
    let bits_from = state.clone();
    let lst = tokio::task::spawn_blocking(move || bits_of(&bits_from).encode())
        .await
        .map_err(|e| DbError::Pool(format!("building a status list: {e}")))?;
    let mut h = Sha256::new();
    h.update(key.kid().as_bytes());
    h.update(iat.to_be_bytes());
    h.update(lst.as_bytes());
    let etag = format!("W/\"{}\"", hex::encode(&h.finalize()[..16]));
    let claims = ListTokenClaims {
        sub: list_uri(issuer, client_id, list_no),
        iat,
        exp: Some(iat + validity),
        ttl: Some(core.settings.tokens.status_list_ttl_secs),
        status_list: ListClaim { bits: 1, lst },
    };
    let jwt =
        key.sign_jwt(TYP, &claims).map_err(|e| DbError::Pool(format!("signing a status list: {e:?}")))?;
    Ok(Built {
        body: web::Bytes::from(jwt),
        etag,
        state,
        kid: key.kid().to_owned(),
        iat,
        read,
        epoch,
        generation,
    })
}

/// The largest list number a client could ever reach.
const MAX_LIST_NO: i64 = i64::MAX / LIST_LEN;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(&format!("{PATH}/{{client_id}}/{{list_no}}"), web::get().to(serve));
}

/// `GET /statuslists/{client_id}/{list_no}`. Public, like the JWKS: a list says which
/// indexes are invalid, nothing about whose tokens they are. An unknown client costs no query
/// (the client cache remembers unknown ids), nor does a list that has not started.
#[tracing::instrument(skip_all)]
async fn serve(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (client_id, list_no) = path.into_inner();
    let not_found = || HttpResponse::NotFound().insert_header((header::CACHE_CONTROL, "no-store")).finish();
    let unavailable = |e: &DbError| {
        tracing::error!(error = ?e, "serving a status list failed");
        HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "1"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()
    };
    // An address that keeps asking for clients that do not exist is refused for a while (not
    // for the lists of clients this instance knows).
    let ip = crate::http::client_ip::of_request(&req);
    let known = state.clients.cached_known(&ClientId::from_string(client_id.clone()));
    if !known && let Some(refused) = state.limits.refusing(Limit::UnknownLookup, ip, None) {
        return HttpResponse::TooManyRequests()
            .insert_header((header::RETRY_AFTER, refused.retry_after_secs().to_string()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish();
    }
    let Ok(list_no) = list_no.parse::<i64>() else { return not_found() };
    if !(0..=MAX_LIST_NO).contains(&list_no) || client_id.len() > 64 {
        return not_found();
    }
    match state.clients.get(&ClientId::from_string(client_id.clone())).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            state.limits.charge_failure(Limit::UnknownLookup, ip, None).await;
            return not_found();
        }
        Err(e) => return unavailable(&e),
    }
    let built = match state.status_lists.get(&state, &issuer.issuer, &client_id, list_no).await {
        Ok(Some(b)) => b,
        Ok(None) => return not_found(),
        Err(e) => return unavailable(&e),
    };
    // Intermediaries revalidate every time (cheap, with the ETag); the list's own `ttl` is
    // what a verifier caches by.
    if not_modified(req.get_header::<IfNoneMatch>(), &built.etag) {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, built.etag.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, MEDIA_TYPE))
        .insert_header((header::ETAG, built.etag.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(built.body.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn ms(s: i64, ms: i64) -> DateTime<Utc> {
        t(s) + chrono::Duration::milliseconds(ms)
    }

    #[test]
    fn blocks_are_cut_from_the_second_after_the_cut_off_as_introspection_counts() {
        assert_eq!(cut_blocks_before(t(100)), t(100));
        assert_eq!(cut_blocks_before(ms(100, 300)), t(101));
        assert_eq!(cut_blocks_before(ms(100, 999)), t(101));
    }

    #[test]
    fn a_block_hands_out_its_indexes_once_and_stops_at_a_cut_off_or_with_age() {
        let mut b = Block { block_no: 3, taken_at: t(100), next: 0 };
        assert_eq!(b.take(t(50), t(100)), Some(3 * BLOCK));
        assert_eq!(b.take(t(50), t(101)), Some(3 * BLOCK + 1));
        // A cut-off after the block was taken (a suspension or resume): never again.
        assert_eq!(b.take(t(101), t(102)), None);
        // A cut-off at the very instant it was taken (a whole second) leaves it usable.
        assert!(b.take(t(100), t(102)).is_some());
        let old = t(100) + BLOCK_MAX_AGE;
        assert_eq!(b.take(t(50), old), None, "an hour old");
        let mut full = Block { block_no: 0, taken_at: t(100), next: BLOCK - 1 };
        assert_eq!(full.take(t(0), t(100)), Some(BLOCK - 1));
        assert_eq!(full.take(t(0), t(100)), None);
    }

    #[test]
    fn within_the_cut_offs_second_any_block_serves_and_none_taken_in_it_outlives_it() {
        // Resumed at 100.300: a token issued before 101 has iat 100, invalid at introspection
        // whatever its index; the list cuts every block taken before 101.
        let cut_off = ms(100, 300);
        let mut old = Block { block_no: 1, taken_at: t(90), next: 0 };
        assert!(old.take(cut_off, ms(100, 500)).is_some(), "its tokens are invalid anyway");
        let mut in_second = Block { block_no: 2, taken_at: ms(100, 600), next: 0 };
        assert!(in_second.take(cut_off, ms(100, 900)).is_some());
        assert_eq!(in_second.take(cut_off, t(101)), None, "retired once its tokens would be valid");
        let mut after = Block { block_no: 3, taken_at: t(101), next: 0 };
        assert!(after.take(cut_off, t(101)).is_some());
        // An instance whose clock is behind the one that set the cut-off keeps serving (its
        // tokens' iat is before the cut-off: invalid everywhere) instead of failing.
        let mut behind = Block { block_no: 4, taken_at: t(98), next: 0 };
        assert!(behind.take(t(99), t(98)).is_some());
    }

    #[test]
    fn only_a_tokens_own_list_of_this_issuer_is_a_place() {
        let claim = |uri: &str, idx: u64| StatusClaim { status_list: StatusRef { idx, uri: uri.into() } };
        let iss = "https://id.example";
        assert_eq!(
            place_of(iss, "app", &claim("https://id.example/statuslists/app/2", 7)),
            Some(Place { client_id: "app".into(), list_no: 2, idx: 7 })
        );
        for (uri, idx) in [
            ("https://id.example/statuslists/other/2", 7),
            ("https://evil.example/statuslists/app/2", 7),
            ("https://id.example/statuslists/app/-1", 7),
            ("https://id.example/statuslists/app/x", 7),
            ("https://id.example/statuslists/app/2", LIST_LEN as u64),
            ("https://id.example/jwks/app/2", 7),
        ] {
            assert_eq!(place_of(iss, "app", &claim(uri, idx)), None, "{uri} {idx}");
        }
        assert_eq!(list_uri(iss, "app", 2), "https://id.example/statuslists/app/2");
    }

    #[test]
    fn the_bits_are_the_cut_off_blocks_and_the_invalid_tokens() {
        let state = ListState {
            next_block: 2,
            suspended: false,
            blocks_cut_off: vec![1],
            invalid: vec![5, LIST_LEN + 3],
        };
        let bits = bits_of(&state);
        let b = |i: i64| bits.get(usize::try_from(i).unwrap());
        assert_eq!(bits.len(), usize::try_from(LIST_LEN).unwrap());
        assert_eq!((b(4), b(5), b(6)), (Some(false), Some(true), Some(false)));
        assert_eq!(
            (b(BLOCK - 1), b(BLOCK), b(2 * BLOCK - 1), b(2 * BLOCK)),
            (Some(false), Some(true), Some(true), Some(false))
        );
        let suspended =
            bits_of(&ListState { next_block: 1, suspended: true, blocks_cut_off: vec![], invalid: vec![] });
        assert!(
            [0, BLOCK * 7 + 5, LIST_LEN - 1]
                .iter()
                .all(|&i| suspended.get(usize::try_from(i).unwrap()) == Some(true))
        );
    }
}
