//! Training: the configuration tables, GRPO and SFT runs, their updates, checkpoints, metrics
//! and plots.

pub mod checkpoint;
pub mod config;
pub mod episodes;
pub mod grpo_run;
pub mod plot;
pub mod sft;
pub mod update;

pub use config::{ConfigError, TrainConfig};
pub use grpo_run::{GrpoRun, RunOptions};
