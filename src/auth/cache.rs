//! [`VerifiedTokens`]: the claims of tokens already verified, so that a
//! client sending the same bearer token on every request pays for the
//! signature check once (issue #14).
//!
//! # What a hit may skip, and why that is safe
//!
//! Only a token that passed every check of
//! [`super::TokenVerifier::verify`] is inserted, keyed by the SHA-256 of its
//! exact text: a forged or altered token (one byte anywhere) has another key,
//! so it misses and goes through full verification. Refusals are never
//! stored. Finding a different token under the same key would take a
//! SHA-256 second preimage.
//!
//! A hit must give the answer the full check would give now. That answer
//! depends on the token (fixed by the key), on `now`, and on the verifier's
//! state:
//! - **Time.** A hit re-checks `exp` and `nbf` against the caller's `now`
//!   with the same function and leeway as the full check
//!   ([`super::verify::check_times`]), so a cached token is refused once
//!   `now` passes `exp` (and its entry dropped), and a `now` before `nbf`
//!   is refused too. `now` is the wall time the caller passes, never the
//!   presence clock (STYLE.md "Time"), so moving the emulator clock affects
//!   cached and uncached tokens alike: not at all.
//! - **Keys.** The HS256 secret and the JWKS file are read once at start.
//!   Keys from a JWKS URL change when an unknown `kid` triggers a refetch,
//!   which can remove the key a cached token was signed with (or, for a
//!   token without `kid`, add a second key and so make it ambiguous). Every
//!   entry records the key-set generation it was verified under (read
//!   *before* the key lookup, so a refetch racing with the verification
//!   leaves the entry stale), and a hit needs that generation to be current;
//!   otherwise it counts as a miss and the token is verified again.
//! - **Configuration.** Audiences, issuer and leeway are fixed when the
//!   verifier is built and the cache belongs to that verifier, so a new
//!   configuration means a new, empty cache.
//!
//! There is no revocation list, so nothing else can turn an accepted token
//! into a refused one.
//!
//! # Why quick_cache
//!
//! The cache needs only a bounded concurrent map with a sensible eviction
//! policy. Expiry cannot be left to a cache-managed TTL: it must be judged
//! against the caller's `now`, exactly like the uncached path, so every hit
//! checks `exp` itself and moka's timer-wheel expiry (on its own monotonic
//! clock) would add nothing but weight. `quick_cache::sync::Cache` is small,
//! sharded, and evicts with S3-FIFO, which drops one-hit entries (such as
//! tokens that expired and are never sent again) before the ones in use;
//! with only its `custom-hasher` feature on it brings no crate the server
//! did not already build (`hashbrown`, `equivalent`, `foldhash`), where
//! moka would add several (crossbeam, tagptr, …) and noticeably more
//! compile time. That feature hashes the digests with foldhash rather than
//! SipHash, a few hundred instructions less per request (issue #14).

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::verify::check_times;
use super::{AuthError, Principal};

/// The cache key: SHA-256 of the token's text. Keeping the digest rather
/// than the token bounds an entry's size (tokens may be 32 KiB) and keeps
/// bearer tokens out of the cache (a connection remembers its own last
/// accepted token while it is open: [`remembering_tokens`]).
pub(crate) type TokenDigest = [u8; 32];

/// The digest that keys `token` in [`VerifiedTokens`]: its SHA-256, or the
/// digest remembered for it on this connection (see
/// [`remembering_tokens`]).
pub(crate) fn digest(token: &str) -> TokenDigest {
    LAST_TOKEN
        .try_with(|last| match &*last.borrow() {
            Some((text, key)) if same_bytes(text.as_bytes(), token.as_bytes()) => Some(*key),
            _ => None,
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| Sha256::digest(token.as_bytes()).into())
}

tokio::task_local! {
    /// The last token accepted on the current connection, and its digest.
    static LAST_TOKEN: RefCell<Option<(Box<str>, TokenDigest)>>;
}

/// Runs `connection` (the task serving one client connection) remembering
/// the last token accepted on it with its digest, so that [`digest`] gives
/// the digest of the same token again without hashing it.
///
/// A client sends the same bearer token on every request of a connection,
/// and hashing it again cost about 4-5 % of a getPresence's CPU (issue
/// #14). The memo changes nothing the cache decides: it maps a token's
/// exact text to the SHA-256 of that text, compared in time that depends
/// only on the lengths ([`same_bytes`]: no early exit, so the comparison's
/// timing says nothing about the remembered token). Only an accepted token
/// is remembered ([`remember`]), so no client can make a connection hold a
/// token no issuer signed; it is dropped with the connection. Requests
/// served in tasks of their own (HTTP/2 streams) hash as before.
pub async fn remembering_tokens<F: Future>(connection: F) -> F::Output {
    LAST_TOKEN.scope(RefCell::new(None), connection).await
}

/// Remembers `token`, just accepted, and its digest on this connection.
pub(crate) fn remember(token: &str, key: &TokenDigest) {
    let _ = LAST_TOKEN.try_with(|last| {
        let mut last = last.borrow_mut();
        if !matches!(&*last, Some((_, known)) if known == key) {
            *last = Some((token.into(), *key));
        }
    });
}

/// Whether `a` and `b` are the same bytes, looking at every byte whatever
/// the first difference (only the lengths may end it early).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// What a successful verification established, and what a later hit must
/// check again.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    /// The principal the token speaks for.
    pub(crate) principal: Arc<Principal>,
    /// The `exp` claim, in seconds since the epoch.
    pub(crate) exp: i64,
    /// The `nbf` claim, in seconds since the epoch, when present.
    pub(crate) nbf: Option<i64>,
}

/// One cached verification.
#[derive(Debug)]
struct Entry {
    verified: Verified,
    /// The key-set generation the token was verified under.
    generation: u64,
}

/// Counters of a verifier's token cache, for tests and measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenCacheStats {
    /// Verifications answered from the cache (including refusals because a
    /// cached token's `exp` or `nbf` no longer fits `now`).
    pub hits: u64,
    /// Verifications that went through the full check.
    pub misses: u64,
    /// Tokens cached now.
    pub entries: usize,
}

/// A bounded cache of successfully verified tokens (see the module doc).
pub(crate) struct VerifiedTokens {
    entries: quick_cache::sync::Cache<TokenDigest, Arc<Entry>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens")
            .field("stats", &self.stats())
            .finish()
    }
}

impl VerifiedTokens {
    /// An empty cache holding at most about `capacity` tokens (quick_cache
    /// rounds each shard's share up, so at most `capacity` plus one less than
    /// the number of shards; exactly `capacity` when it is small enough for
    /// one shard).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached answer for the token with this digest at wall time `now`
    /// (seconds since the epoch), or `None` when the full check must run:
    /// not cached, or cached under another key-set `generation`.
    ///
    /// A cached token whose `exp` has passed is refused and dropped; one
    /// whose `nbf` is still ahead of `now` is refused and kept.
    pub(crate) fn lookup(
        &self,
        key: &TokenDigest,
        generation: u64,
        now: i64,
        leeway: i64,
    ) -> Option<Result<Arc<Principal>, AuthError>> {
        let entry = match self.entries.get(key) {
            Some(entry) if entry.generation == generation => entry,
            _ => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        self.hits.fetch_add(1, Ordering::Relaxed);
        let verified = &entry.verified;
        match check_times(verified.exp, verified.nbf, now, leeway) {
            Ok(()) => Some(Ok(verified.principal.clone())),
            Err(AuthError::Expired) => {
                // Whatever is under this key now is the same token, with
                // the same `exp`, even if re-verified under a newer
                // generation meanwhile.
                self.entries.remove(key);
                Some(Err(AuthError::Expired))
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// Records a successful verification made under key-set `generation`.
    pub(crate) fn insert(&self, key: TokenDigest, verified: Verified, generation: u64) {
        self.entries.insert(
            key,
            Arc::new(Entry {
                verified,
                generation,
            }),
        );
    }

    /// Hit and miss counts and the number of cached tokens.
    pub(crate) fn stats(&self) -> TokenCacheStats {
        TokenCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.entries.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256(token: &str) -> TokenDigest {
        Sha256::digest(token.as_bytes()).into()
    }

    #[test]
    fn same_bytes_needs_every_byte_and_the_length_equal() {
        assert!(same_bytes(b"", b""));
        assert!(same_bytes(b"eyJ.a.b", b"eyJ.a.b"));
        assert!(!same_bytes(b"eyJ.a.b", b"fyJ.a.b"));
        assert!(!same_bytes(b"eyJ.a.b", b"eyJ.a.c"));
        assert!(!same_bytes(b"eyJ.a.b", b"eyJ.a.bb"));
        assert!(!same_bytes(b"", b"x"));
    }

    #[test]
    fn outside_a_connection_the_digest_is_the_sha256_and_nothing_is_kept() {
        remember("a.b.c", &[7; 32]);
        assert_eq!(digest("a.b.c"), sha256("a.b.c"));
    }

    #[tokio::test]
    async fn a_connection_gives_the_remembered_digest_for_that_exact_token_only() {
        remembering_tokens(async {
            assert_eq!(digest("a.b.c"), sha256("a.b.c"), "nothing remembered yet");
            // A marker in place of the true digest shows where the answer
            // comes from.
            remember("a.b.c", &[7; 32]);
            assert_eq!(digest("a.b.c"), [7; 32], "remembered");
            for other in ["a.b.d", "b.b.c", "a.b.c ", "a.b.", ""] {
                assert_eq!(digest(other), sha256(other), "{other:?}");
            }
            assert_eq!(digest("a.b.c"), [7; 32], "still remembered");
            // The next accepted token takes its place.
            remember("x.y.z", &sha256("x.y.z"));
            assert_eq!(digest("a.b.c"), sha256("a.b.c"));
            assert_eq!(digest("x.y.z"), sha256("x.y.z"));
        })
        .await;
        let after = tokio::spawn(async { digest("x.y.z") }).await.unwrap();
        assert_eq!(after, sha256("x.y.z"));
    }
}
