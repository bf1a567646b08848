//! The model: SmolLM2 against transformers, a Hugging Face directory, loading errors, gradients.

mod gradients;
mod hf_dir;
mod load_errors;
mod smollm2;
