//! The server's sessions: one [`Episode`] each (per-episode tool state and seed), kept in memory,
//! dropped on request or after a time without use.
//!
//! Expiry exists because the frameworks that call us (verl, TRL) never say that a trajectory
//! ended; without it every abandoned episode's `/state` directory would stay until the process
//! dies. A session's directory is removed when its last in-flight call finishes, not before.
//! The table is bounded: a full table refuses new sessions (the caller answers 429), so a client
//! that leaks ids cannot grow memory without end.

use crate::episode::Episode;
use crate::registry::Registry;
use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most characters of a session id (ids appear in URLs and logs).
pub const MAX_ID_LEN: usize = 256;

/// One episode served over HTTP.
#[derive(Debug)]
pub struct Session {
    /// The session's id, as the client names it.
    pub id: String,
    /// The episode: its seed and its stateful tools' directories.
    pub episode: Arc<Episode>,
    ttl: Duration,
    last_used: Mutex<Instant>,
    turns: AtomicUsize,
    /// Requests of one session run one at a time, in the order they take this lock, so calls to
    /// a stateful tool from two requests cannot interleave.
    pub order: tokio::sync::Mutex<()>,
}

impl Session {
    /// Counts one more assistant turn; returns its 0-based index.
    pub fn next_turn(&self) -> usize {
        self.turns.fetch_add(1, Ordering::Relaxed)
    }

    /// Marks the session used now (its expiry clock restarts).
    pub fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(*lock(&self.last_used)) >= self.ttl
    }
}

/// Why a session could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A live session already has this id.
    #[error("session `{0}` already exists")]
    Exists(String),
    /// The table holds its maximum number of sessions.
    #[error("the server holds its maximum of {0} sessions; close some or retry later")]
    Full(usize),
    /// The id is empty, too long, or has characters other than ASCII letters, digits, `-`, `_`,
    /// `.` and `:`.
    #[error("session id must be 1..={MAX_ID_LEN} characters of [A-Za-z0-9._:-], got {0:?}")]
    BadId(String),
}

/// What a new session starts with; `None` fields take the table's defaults.
#[derive(Debug, Clone, Default)]
pub struct SessionSpec {
    /// The id; a fresh random one if absent.
    pub id: Option<String>,
    /// The episode seed; the config's `sandbox.seed` if absent (as `toolenv batch` does).
    pub seed: Option<u64>,
    /// Time without use before the session is dropped.
    pub ttl: Option<Duration>,
}

/// Every live session of a server.
pub struct Sessions {
    registry: Arc<Registry>,
    map: Mutex<HashMap<String, Arc<Session>>>,
    default_ttl: Duration,
    max_sessions: usize,
    ids: RandomState,
    next_id: AtomicU64,
}

impl Sessions {
    /// An empty table whose episodes are `registry`'s.
    pub fn new(registry: Arc<Registry>, default_ttl: Duration, max_sessions: usize) -> Self {
        Sessions {
            registry,
            map: Mutex::new(HashMap::new()),
            default_ttl,
            max_sessions: max_sessions.max(1),
            ids: RandomState::new(),
            next_id: AtomicU64::new(0),
        }
    }

    /// Creates a session; an id already live is an error.
    pub fn create(&self, spec: SessionSpec) -> Result<Arc<Session>, SessionError> {
        let id = match spec.id {
            Some(id) => checked_id(id)?,
            None => self.fresh_id(),
        };
        let mut map = lock(&self.map);
        if map.len() >= self.max_sessions {
            return Err(SessionError::Full(self.max_sessions));
        }
        match map.entry(id) {
            Entry::Occupied(e) => Err(SessionError::Exists(e.key().clone())),
            Entry::Vacant(e) => {
                let session = self.new_session(e.key().clone(), spec.seed, spec.ttl);
                Ok(e.insert(session).clone())
            }
        }
    }

    /// The live session `id`, or a new one with the defaults (verl and VerlTool key state by
    /// their own request ids and never create it first). The flag says whether it was created.
    pub fn get_or_create(&self, id: &str) -> Result<(Arc<Session>, bool), SessionError> {
        let mut map = lock(&self.map);
        if let Some(s) = map.get(id) {
            s.touch();
            return Ok((s.clone(), false));
        }
        let id = checked_id(id.to_string())?;
        if map.len() >= self.max_sessions {
            return Err(SessionError::Full(self.max_sessions));
        }
        let session = self.new_session(id.clone(), None, None);
        map.insert(id, session.clone());
        Ok((session, true))
    }

    /// Drops session `id`; false if there was none.
    pub fn remove(&self, id: &str) -> bool {
        // The episode (and its directory) goes when the last in-flight call lets go of it.
        lock(&self.map).remove(id).is_some()
    }

    /// Drops every session unused for its time to live; returns how many went.
    pub fn expire(&self, now: Instant) -> usize {
        let mut map = lock(&self.map);
        let before = map.len();
        map.retain(|_, s| !s.expired(now));
        before - map.len()
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Whether there is no live session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn new_session(&self, id: String, seed: Option<u64>, ttl: Option<Duration>) -> Arc<Session> {
        let episode = match seed {
            Some(seed) => self.registry.episode_with_seed(seed),
            None => self.registry.episode(),
        };
        Arc::new(Session {
            id,
            episode: Arc::new(episode),
            ttl: ttl.unwrap_or(self.default_ttl),
            last_used: Mutex::new(Instant::now()),
            turns: AtomicUsize::new(0),
            order: tokio::sync::Mutex::new(()),
        })
    }

    /// 128 random bits (this process's hasher keys, which differ between processes, over a
    /// counter), so two servers behind one balancer do not hand out the same id.
    fn fresh_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let a = self.ids.hash_one(n);
        let b = self.ids.hash_one((n, a));
        format!("{a:016x}{b:016x}")
    }
}

fn checked_id(id: String) -> Result<String, SessionError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(id)
    } else {
        Err(SessionError::BadId(id))
    }
}

/// A poisoned lock only means another request panicked mid-update of a plain map or instant;
/// the data is still consistent, so serving goes on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
