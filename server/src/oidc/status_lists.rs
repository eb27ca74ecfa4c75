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
//! instance revoked something, and at most [`REBUILD_AFTER`] after it was built, so a change
//! made anywhere (another instance, the CLI, a campaign) is in the served list within a
//! second; a resource server sees it within the list's `ttl` after that. The JWT is re-signed
//! only when its bits change (or half its life has passed), so its `ETag` stays put and a
//! verifier's conditional request is a 304.

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
use crate::domain::Client;
use crate::state::{AppState, Core};
use crate::store::DbError;
use crate::store::status_lists::{self, Place};

/// Indexes per block.
pub const BLOCK: i64 = 1024;
/// Blocks per list: a list holds 1,048,576 tokens, about 130 bytes compressed while all of
/// them are valid. A client that issues more moves on to its next list.
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

/// A block in use by this instance.
#[derive(Debug, Clone, Copy)]
struct Block {
    block_no: i64,
    taken_at: DateTime<Utc>,
    next: i64,
}

impl Block {
    /// The next index of this block, if it may still hand one out for a client whose cut-off
    /// is `cut_off`.
    fn take(&mut self, cut_off: DateTime<Utc>, now: DateTime<Utc>) -> Option<i64> {
        if self.next >= BLOCK || self.taken_at < cut_off || now - self.taken_at >= BLOCK_MAX_AGE {
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
    /// `None`: no such list.
    body: Option<web::Bytes>,
    etag: String,
    lst: String,
    signed_at: i64,
    built: Instant,
    epoch: i64,
    changes: u64,
}

/// A client's id and a list number.
type ListKey = (String, i64);

#[derive(Default)]
struct Slot {
    built: RwLock<Option<Arc<Built>>>,
    rebuild: tokio::sync::Mutex<()>,
}

/// This instance's index blocks and built lists. Cheap to clone.
#[derive(Clone, Default)]
pub struct StatusLists {
    blocks: Arc<Mutex<HashMap<String, Arc<ClientBlocks>>>>,
    lists: Arc<Mutex<HashMap<ListKey, Arc<Slot>>>>,
    /// Bumped when this instance changed something a list shows (a revocation).
    changes: Arc<AtomicU64>,
}

/// Why no index could be given.
#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("no usable status-list block")]
    Exhausted,
}

impl StatusLists {
    /// An index for a token of `client` issued now, and the `status` claim naming it.
    pub async fn assign(
        &self,
        core: &Core,
        issuer: &str,
        client: &Client,
    ) -> Result<(StatusClaim, Place), AssignError> {
        let entry = {
            let mut blocks = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
            if blocks.len() >= MAX_CLIENTS && !blocks.contains_key(client.id.as_str()) {
                blocks.clear();
            }
            blocks.entry(client.id.as_str().to_owned()).or_default().clone()
        };
        let cut_off = client.tokens_valid_after;
        let take = |now: DateTime<Utc>| {
            let mut current = entry.current.lock().unwrap_or_else(|p| p.into_inner());
            current.as_mut().and_then(|b| b.take(cut_off, now))
        };
        // Two tries: a block just taken can only be unusable if the clock jumped.
        for _ in 0..2 {
            let now = crate::clock::truncate_micros(core.clock.now());
            if let Some(global) = take(now) {
                return Ok(self.claim(issuer, client, global));
            }
            let _one = entry.refill.lock().await;
            if let Some(global) = take(now) {
                return Ok(self.claim(issuer, client, global));
            }
            let forget_before = now - BLOCK_MAX_AGE - horizon(core);
            let id = client.id.as_str().to_owned();
            let block_no = core.db.run(move |c| status_lists::take_block(c, &id, now, forget_before)).await?;
            *entry.current.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Block { block_no, taken_at: now, next: 0 });
        }
        Err(AssignError::Exhausted)
    }

    fn claim(&self, issuer: &str, client: &Client, global: i64) -> (StatusClaim, Place) {
        let place = Place {
            client_id: client.id.as_str().to_owned(),
            list_no: global / LIST_LEN,
            idx: global % LIST_LEN,
        };
        let uri = list_uri(issuer, &place.client_id, place.list_no);
        let idx = u64::try_from(place.idx).unwrap_or(0);
        (StatusClaim { status_list: StatusRef { idx, uri } }, place)
    }

    /// Makes this instance rebuild its lists at the next request (it changed one).
    pub fn changed(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    fn slot(&self, client_id: &str, list_no: i64) -> Arc<Slot> {
        let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        let key = (client_id.to_owned(), list_no);
        if lists.len() >= MAX_LISTS && !lists.contains_key(&key) {
            lists.clear();
        }
        lists.entry(key).or_default().clone()
    }

    /// The list, from this instance's copy while it is current, else built again.
    async fn get(
        &self,
        state: &AppState,
        issuer: &str,
        client_id: &str,
        list_no: i64,
    ) -> Result<Arc<Built>, DbError> {
        let slot = self.slot(client_id, list_no);
        let current = |slot: &Slot| {
            let built = slot.built.read().unwrap_or_else(|p| p.into_inner());
            built
                .as_ref()
                .filter(|b| {
                    b.built.elapsed() < REBUILD_AFTER
                        && b.epoch == state.clients.epoch()
                        && b.changes == self.changes.load(Ordering::Acquire)
                })
                .cloned()
        };
        if let Some(b) = current(&slot) {
            return Ok(b);
        }
        let _one = slot.rebuild.lock().await;
        if let Some(b) = current(&slot) {
            return Ok(b);
        }
        // Read before the database: a change landing meanwhile moves them again.
        let (epoch, changes) = (state.clients.epoch(), self.changes.load(Ordering::Acquire));
        let previous = slot.built.read().unwrap_or_else(|p| p.into_inner()).clone();
        let built = Arc::new(
            build(&state.core, issuer, client_id, list_no, previous.as_deref(), epoch, changes).await?,
        );
        *slot.built.write().unwrap_or_else(|p| p.into_inner()) = Some(built.clone());
        Ok(built)
    }
}

/// How long after a block stops being used its tokens may still be alive.
fn horizon(core: &Core) -> chrono::Duration {
    let secs = i64::try_from(core.settings.tokens.max_token_lifetime_secs).unwrap_or(i64::MAX / 2);
    chrono::Duration::seconds(secs.min(10 * 365 * 86_400)) + chrono::Duration::hours(1)
}

/// The bits of a list in `s`.
pub fn bits_of(s: &status_lists::ListState) -> StatusBits {
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

async fn build(
    core: &Core,
    issuer: &str,
    client_id: &str,
    list_no: i64,
    previous: Option<&Built>,
    epoch: i64,
    changes: u64,
) -> Result<Built, DbError> {
    let now = core.clock.now();
    let id = client_id.to_owned();
    let found = core.db.run(move |c| status_lists::list_state(c, &id, list_no, BLOCKS_PER_LIST, now)).await?;
    let built = Instant::now();
    let Some(found) = found else {
        return Ok(Built {
            body: None,
            etag: String::new(),
            lst: String::new(),
            signed_at: 0,
            built,
            epoch,
            changes,
        });
    };
    let lst = tokio::task::spawn_blocking(move || bits_of(&found).encode())
        .await
        .map_err(|e| DbError::Pool(format!("building a status list: {e}")))?;
    let at = now.timestamp();
    // The same bits, recently signed: the same body, so the same ETag.
    if let Some(p) = previous
        && p.body.is_some()
        && p.lst == lst
        && at - p.signed_at < LIST_VALIDITY_SECS / 2
    {
        return Ok(Built {
            body: p.body.clone(),
            etag: p.etag.clone(),
            lst,
            signed_at: p.signed_at,
            built,
            epoch,
            changes,
        });
    }
    let claims = ListTokenClaims {
        sub: list_uri(issuer, client_id, list_no),
        iat: at,
        exp: Some(at + LIST_VALIDITY_SECS),
        ttl: Some(core.settings.tokens.status_list_ttl_secs),
        status_list: ListClaim { bits: 1, lst: lst.clone() },
    };
    let key =
        core.keyring.access_token_key().ok_or_else(|| DbError::Pool("no access-token signing key".into()))?;
    let jwt =
        key.sign_jwt(TYP, &claims).map_err(|e| DbError::Pool(format!("signing a status list: {e:?}")))?;
    let digest = Sha256::digest(jwt.as_bytes());
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    Ok(Built { body: Some(web::Bytes::from(jwt)), etag, lst, signed_at: at, built, epoch, changes })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(&format!("{PATH}/{{client_id}}/{{list_no}}"), web::get().to(serve));
}

/// `GET /statuslists/{client_id}/{list_no}`. Public, like the JWKS: a list says which
/// indexes are invalid, nothing about whose tokens they are.
#[tracing::instrument(skip_all)]
async fn serve(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (client_id, list_no) = path.into_inner();
    let not_found = || HttpResponse::NotFound().insert_header((header::CACHE_CONTROL, "no-store")).finish();
    let Ok(list_no) = list_no.parse::<i64>() else { return not_found() };
    if list_no < 0 || client_id.len() > 128 {
        return not_found();
    }
    let built = match state.status_lists.get(&state, &issuer.issuer, &client_id, list_no).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = ?e, "building a status list failed");
            return HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "1"))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
        }
    };
    let Some(body) = &built.body else { return not_found() };
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
        .body(body.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn a_block_hands_out_its_indexes_once_and_stops_at_a_cut_off_or_with_age() {
        let mut b = Block { block_no: 3, taken_at: t(100), next: 0 };
        assert_eq!(b.take(t(50), t(100)), Some(3 * BLOCK));
        assert_eq!(b.take(t(50), t(101)), Some(3 * BLOCK + 1));
        // A cut-off after the block was taken (a suspension or resume): never again.
        assert_eq!(b.take(t(101), t(102)), None);
        // The cut-off at the very instant it was taken does not retire it (the list cuts
        // blocks taken strictly before).
        assert!(b.take(t(100), t(102)).is_some());
        let old = t(100) + BLOCK_MAX_AGE;
        assert_eq!(b.take(t(50), old), None, "an hour old");
        let mut full = Block { block_no: 0, taken_at: t(100), next: BLOCK - 1 };
        assert_eq!(full.take(t(0), t(100)), Some(BLOCK - 1));
        assert_eq!(full.take(t(0), t(100)), None);
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
        let state = status_lists::ListState {
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
            bits_of(&status_lists::ListState { suspended: true, blocks_cut_off: vec![], invalid: vec![] });
        assert!(
            [0, BLOCK * 7 + 5, LIST_LEN - 1]
                .iter()
                .all(|&i| suspended.get(usize::try_from(i).unwrap()) == Some(true))
        );
    }
}
