//! One episode's private world: its seed and the `/state` directories of its stateful tools.
//!
//! The state root is created lazily (an episode that never calls a stateful tool touches no
//! disk), each stateful tool gets its own subdirectory so tools cannot read each other's state,
//! and everything is removed when the episode is dropped or closed.

use crate::sandbox::HostError;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// An episode. Calls made with the same `Episode` share state; `Episode` is `Sync`, so the
/// calls of one turn may run on several threads.
#[derive(Debug)]
pub struct Episode {
    seed: u64,
    parent: PathBuf,
    dir: OnceLock<Result<tempfile::TempDir, String>>,
}

impl Episode {
    /// A new episode whose state directories will live under `parent`.
    pub fn new(seed: u64, parent: PathBuf) -> Self {
        Episode {
            seed,
            parent,
            dir: OnceLock::new(),
        }
    }

    /// The seed from which every call's randomness derives.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The host directory that `tool` sees as `/state`, created on first use.
    pub fn state_dir(&self, tool: &str) -> Result<PathBuf, HostError> {
        let root = self.dir.get_or_init(|| {
            std::fs::create_dir_all(&self.parent)
                .and_then(|_| {
                    tempfile::Builder::new()
                        .prefix("toolenv-episode-")
                        .tempdir_in(&self.parent)
                })
                .map_err(|e| e.to_string())
        });
        let root = root.as_ref().map_err(|message| HostError::Preopen {
            path: self.parent.clone(),
            message: message.clone(),
        })?;
        let dir = root.path().join(tool);
        std::fs::create_dir_all(&dir).map_err(|e| HostError::Preopen {
            path: dir.clone(),
            message: e.to_string(),
        })?;
        Ok(dir)
    }

    /// The episode's state root, if any stateful tool was called.
    pub fn root(&self) -> Option<&Path> {
        self.dir
            .get()
            .and_then(|d| d.as_ref().ok())
            .map(|d| d.path())
    }

    /// Removes the state directories now, reporting a failure instead of ignoring it as `Drop`
    /// must.
    pub fn close(mut self) -> std::io::Result<()> {
        match self.dir.take() {
            Some(Ok(dir)) => dir.close(),
            _ => Ok(()),
        }
    }
}
