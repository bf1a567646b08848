//! Training: the GRPO math and runs, and the fused AdamW.

mod adamw;
mod grpo;
