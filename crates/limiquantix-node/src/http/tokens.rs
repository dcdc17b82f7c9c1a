//! Registration tokens for the control plane's Add Host: made by `lqctl node token create`
//! (shown once), kept only as SHA-256 hashes in `<state>/http/registration-tokens.json` (0600).
//!
//! The control plane presents the same token to `/token` and then to `/discovery`: `/token` only
//! checks it, and a successful `/discovery` consumes it (single use: a second discovery with
//! it is refused). Expired and used tokens are forgotten a day later.

use sha2::{Digest as _, Sha256};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Shortest lifetime of a token.
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// Longest lifetime of a token.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Lifetime when the caller names none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// How long an expired or used token is remembered (to answer "expired" or "used").
const FORGET_AFTER: u64 = 24 * 3600;
/// Most tokens kept.
const MAX_TOKENS: usize = 64;

/// One token as stored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
struct Stored {
    /// SHA-256 of the token, hex.
    sha256: String,
    /// Unix seconds.
    created_at: u64,
    /// Unix seconds.
    expires_at: u64,
    /// Unix seconds of the discovery that consumed it.
    #[serde(default)]
    used_at: Option<u64>,
}

/// What checking a presented token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Valid: its creation and expiry, Unix seconds.
    Valid {
        /// When it was made.
        created_at: u64,
        /// When it expires.
        expires_at: u64,
    },
    /// Known, past its expiry.
    Expired,
    /// Known, already consumed by a discovery.
    Used,
    /// Not a token of this node (or none presented) while one exists.
    Invalid,
    /// This node has no usable token at all.
    NoneExists,
}

/// A token just made.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The token itself (shown once, never stored).
    pub token: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
}

/// Why the store fails.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The lifetime is out of bounds.
    #[error("ttl: {0} s is outside {min}..={max} s", min = MIN_TTL.as_secs(), max = MAX_TTL.as_secs())]
    Ttl(u64),
    /// Random bytes are unavailable.
    #[error("no random bytes: {0}")]
    Random(String),
    /// The store file cannot be written.
    #[error("cannot save the tokens: {0}")]
    Save(String),
}

/// The token store.
#[derive(Debug)]
pub struct TokenStore {
    file: PathBuf,
    tokens: Mutex<Vec<Stored>>,
}

/// Now, Unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl TokenStore {
    /// Opens the store in `<state>/http/` (an unreadable file starts empty, logged). Blocking.
    pub fn open(state_dir: &std::path::Path) -> Self {
        let file = state_dir.join("http").join("registration-tokens.json");
        let tokens = match std::fs::read(&file) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::error!(file = %file.display(), error = %e, "unreadable token store; starting empty");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        TokenStore {
            file,
            tokens: Mutex::new(tokens),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Stored>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, tokens: &[Stored]) -> Result<(), TokenError> {
        let save = |e: &dyn std::fmt::Display| TokenError::Save(e.to_string());
        if let Some(dir) = self.file.parent() {
            limiquantix_fs::create_private_dir(dir).map_err(|e| save(&e.source))?;
        }
        let bytes = serde_json::to_vec_pretty(tokens).map_err(|e| save(&e))?;
        limiquantix_fs::write_atomic(&self.file, &bytes, 0o600).map_err(|e| save(&e))
    }

    /// Makes a token valid for `ttl` (default 1 h). Blocking (writes the store).
    pub fn create(&self, ttl: Option<Duration>) -> Result<NewToken, TokenError> {
        let ttl = ttl.unwrap_or(DEFAULT_TTL);
        if ttl < MIN_TTL || ttl > MAX_TTL {
            return Err(TokenError::Ttl(ttl.as_secs()));
        }
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).map_err(|e| TokenError::Random(e.to_string()))?;
        let token = format!(
            "lqreg-{}",
            raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let created_at = now();
        let stored = Stored {
            sha256: hash(&token),
            created_at,
            expires_at: created_at + ttl.as_secs(),
            used_at: None,
        };
        let mut tokens = self.lock();
        let mut next = tokens.clone();
        prune(&mut next, created_at);
        next.push(stored);
        if next.len() > MAX_TOKENS {
            let excess = next.len() - MAX_TOKENS;
            next.drain(..excess);
        }
        self.save(&next)?;
        *tokens = next;
        Ok(NewToken {
            token,
            created_at,
            expires_at: created_at + ttl.as_secs(),
        })
    }

    /// Checks a presented token (`None`: no `Authorization: Bearer`).
    pub fn check(&self, presented: Option<&str>) -> Check {
        let t = now();
        let tokens = self.lock();
        let found = presented.and_then(|p| {
            let h = hash(p);
            tokens.iter().find(|s| s.sha256 == h).cloned()
        });
        match found {
            Some(s) if s.used_at.is_some() => Check::Used,
            Some(s) if s.expires_at <= t => Check::Expired,
            Some(s) => Check::Valid {
                created_at: s.created_at,
                expires_at: s.expires_at,
            },
            None if tokens
                .iter()
                .any(|s| s.used_at.is_none() && s.expires_at > t) =>
            {
                Check::Invalid
            }
            None => Check::NoneExists,
        }
    }

    /// Consumes a valid token (after a successful discovery). Blocking (writes the store).
    pub fn consume(&self, presented: &str) -> Result<(), TokenError> {
        let h = hash(presented);
        let mut tokens = self.lock();
        let mut next = tokens.clone();
        if let Some(s) = next.iter_mut().find(|s| s.sha256 == h) {
            s.used_at = Some(now());
        }
        self.save(&next)?;
        *tokens = next;
        Ok(())
    }
}

/// Drops tokens expired or used more than [`FORGET_AFTER`] ago.
fn prune(tokens: &mut Vec<Stored>, now: u64) {
    tokens.retain(|s| {
        let end = s.used_at.unwrap_or(s.expires_at).min(s.expires_at);
        end + FORGET_AFTER > now
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_life_of_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path());
        assert_eq!(store.check(Some("x")), Check::NoneExists);
        assert!(matches!(
            store.create(Some(Duration::from_secs(1))),
            Err(TokenError::Ttl(1))
        ));
        let t = store.create(None).unwrap();
        assert!(matches!(store.check(Some(&t.token)), Check::Valid { .. }));
        assert_eq!(store.check(Some("lqreg-wrong")), Check::Invalid);
        assert_eq!(store.check(None), Check::Invalid);
        let text =
            std::fs::read_to_string(dir.path().join("http/registration-tokens.json")).unwrap();
        assert!(!text.contains(&t.token), "only the hash is stored");
        // A restart keeps it; a discovery consumes it.
        let store = TokenStore::open(dir.path());
        store.consume(&t.token).unwrap();
        assert_eq!(store.check(Some(&t.token)), Check::Used);
        assert_eq!(store.check(Some("lqreg-wrong")), Check::NoneExists);
    }
}
