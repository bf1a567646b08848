//! The library's error type. Loading a model can fail in many user-visible ways (a missing file,
//! an architecture we do not implement, a checkpoint whose tensors do not fit the config); each
//! gets its own variant so the binary can word it and tests can match on it.

use std::path::PathBuf;

/// Everything that can go wrong in the trainer library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the model format requires is not there.
    #[error("missing file {path}: {what}")]
    MissingFile {
        /// The path that was looked for.
        path: PathBuf,
        /// Why it is needed.
        what: String,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file did not parse or lacked a field.
    #[error("invalid {path}: {message}")]
    InvalidJson {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint is for a model family we have no implementation of.
    #[error("unsupported architecture {0:?} (supported: llama, qwen2)")]
    UnsupportedArchitecture(String),
    /// GGUF metadata lacks a key or has the wrong type.
    #[error("GGUF metadata: {0}")]
    Metadata(String),
    /// A weight the architecture needs is absent.
    #[error("missing tensor {0}")]
    MissingTensor(String),
    /// A weight exists but has the wrong shape for the config.
    #[error("tensor {name}: expected shape {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// The tensor name (as in the checkpoint).
        name: String,
        /// Shape implied by the config.
        expected: Vec<usize>,
        /// Shape in the checkpoint.
        found: Vec<usize>,
    },
    /// Building or running the tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template failed to parse or render.
    #[error("chat template: {0}")]
    Template(String),
    /// The caller passed something unusable (empty batch, bad sampling parameter, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// An error from candle's tensor operations.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
