//! Training: the GRPO objective as pure functions ([`grpo`]), the AdamW optimizer ([`adamw`]),
//! one update from token sequences ([`update`]), scored episodes ([`episodes`]), the GRPO and SFT
//! runs ([`grpo_run`], [`sft`]), checkpoints and exports ([`checkpoint`]), plots ([`plot`]), the
//! before/after table of a run ([`report`]) and the training tables of the environment file
//! ([`config`]).
//!
//! The top room: it samples through `crate::sample` and differentiates through `crate::model`;
//! nothing below it may depend on it.

pub mod adamw;
pub mod checkpoint;
pub mod config;
pub mod episodes;
pub mod grpo;
pub mod grpo_run;
pub mod plot;
pub mod report;
pub mod sft;
pub mod update;

pub use config::{ConfigError, TrainConfig};
pub use grpo_run::{GrpoRun, RunOptions};

use std::path::PathBuf;

use candle_core::{Device, Var};

use self::adamw::{AdamW, AdamWConfig};
use crate::error::{Error, Result};

/// The device `[train] device` names.
fn device(config: &TrainConfig) -> Result<Device> {
    Ok(match config.train.device.as_str() {
        "cuda" => Device::new_cuda(0)?,
        _ => Device::Cpu,
    })
}

/// AdamW over `vars` with `[optimizer]`'s settings and peak rate `lr`.
fn optimizer(config: &TrainConfig, vars: Vec<Var>, lr: f64) -> Result<AdamW> {
    let o = &config.optimizer;
    AdamW::new(
        vars,
        AdamWConfig {
            lr,
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
            weight_decay: o.weight_decay,
        },
    )
}

/// The runtime that runs episodes (tools on its blocking pool).
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io(PathBuf::from("<tokio runtime>"), e))
}

/// The progress bar of a run of `total` steps.
fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} step {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
