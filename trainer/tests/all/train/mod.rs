//! Training: the GRPO math and runs, SFT sequences, and the fused AdamW.

mod adamw;
mod grpo;
mod sft;
