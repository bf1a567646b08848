//! Text <-> token ids, plus the model's special tokens and chat template.
//!
//! From a GGUF file the tokenizer is rebuilt from metadata (`tokenizer.ggml.*`) as a GPT-2 style
//! byte-level BPE, the way transformers converts GGUF tokenizers (no prefix space; SmolLM2's
//! `smollm` pre-tokenizer also splits digits individually, as its original `tokenizer.json`
//! does). From a Hugging Face directory it is read from `tokenizer.json` and
//! `tokenizer_config.json`.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};
use crate::model::chat_template::{ChatTemplate, Message};
use crate::model::weights::GgufFile;

/// GGUF token type of control tokens (`<|im_start|>`, ...); they are matched whole in text.
const GGUF_CONTROL: i64 = 3;
/// GGUF token type of user-defined tokens, also matched whole.
const GGUF_USER_DEFINED: i64 = 4;

/// A tokenizer with the model's special tokens and (optional) chat template.
pub struct TextTokenizer {
    inner: Tokenizer,
    bos: Option<(String, u32)>,
    eos: Option<(String, u32)>,
    chat_template: Option<ChatTemplate>,
}

impl TextTokenizer {
    /// Builds the tokenizer described by a GGUF file's metadata.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let kind = gguf.string("tokenizer.ggml.model")?;
        if kind != "gpt2" {
            return Err(Error::Tokenizer(format!(
                "GGUF tokenizer model {kind:?} is not supported (only byte-level BPE, \"gpt2\")"
            )));
        }
        let tokens = gguf.strings("tokenizer.ggml.tokens")?;
        let merges = gguf.strings("tokenizer.ggml.merges")?;
        let types = gguf.ints("tokenizer.ggml.token_type").unwrap_or_default();
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges = merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| Error::Tokenizer(format!("malformed merge {m:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut inner = Tokenizer::new(bpe);
        let add_prefix_space = gguf
            .bool("tokenizer.ggml.add_space_prefix")
            .unwrap_or(false);
        let byte_level = ByteLevel::new(add_prefix_space, false, true);
        let pre = gguf.string("tokenizer.ggml.pre").unwrap_or("default");
        let pre_tokenizer: PreTokenizerWrapper = if pre == "smollm" {
            Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
        } else {
            byte_level.into()
        };
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(ByteLevelDecoder::default()));

        let special: Vec<AddedToken> = tokens
            .iter()
            .zip(types.iter())
            .filter(|(_, &ty)| ty == GGUF_CONTROL || ty == GGUF_USER_DEFINED)
            .map(|(t, _)| AddedToken::from(t.clone(), true))
            .collect();
        inner.add_special_tokens(&special);

        let token_at = |key: &str| -> Option<(String, u32)> {
            let id = gguf.usize(key).ok()?;
            tokens.get(id).map(|t| (t.clone(), id as u32))
        };
        let bos = token_at("tokenizer.ggml.bos_token_id");
        let eos = token_at("tokenizer.ggml.eos_token_id");
        if gguf.bool("tokenizer.ggml.add_bos_token").unwrap_or(false) {
            if let Some((text, id)) = &bos {
                add_bos_processor(&mut inner, text, *id)?;
            }
        }
        let chat_template = match gguf.string("tokenizer.chat_template") {
            Ok(src) => Some(ChatTemplate::new(
                src,
                bos.as_ref().map_or("", |b| &b.0),
                eos.as_ref().map_or("", |e| &e.0),
            )?),
            Err(_) => None,
        };
        Ok(TextTokenizer {
            inner,
            bos,
            eos,
            chat_template,
        })
    }

    /// Reads `tokenizer.json` (required) and `tokenizer_config.json` (special tokens and chat
    /// template; optional) from a Hugging Face model directory.
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(Error::MissingFile {
                path,
                what: "the tokenizer".into(),
            });
        }
        let inner = Tokenizer::from_file(&path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        let config_path = dir.join("tokenizer_config.json");
        let config: serde_json::Value = if config_path.is_file() {
            let text =
                std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
            serde_json::from_str(&text).map_err(|e| Error::InvalidJson {
                path: config_path.clone(),
                message: e.to_string(),
            })?
        } else {
            serde_json::Value::Null
        };
        let token = |key: &str| -> Option<(String, u32)> {
            let v = config.get(key)?;
            let text = v
                .as_str()
                .or_else(|| v.get("content").and_then(|c| c.as_str()))?;
            inner.token_to_id(text).map(|id| (text.to_string(), id))
        };
        let bos = token("bos_token");
        let eos = token("eos_token");
        let source = match config.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            // A list of named templates: the one named "default" is what transformers uses.
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
            _ => None,
        };
        let source = match source {
            Some(s) => Some(s),
            None => {
                let jinja = dir.join("chat_template.jinja");
                if jinja.is_file() {
                    Some(std::fs::read_to_string(&jinja).map_err(|e| Error::io(&jinja, e))?)
                } else {
                    None
                }
            }
        };
        let chat_template = match source {
            Some(src) => Some(ChatTemplate::new(
                &src,
                bos.as_ref().map_or("", |b| &b.0),
                eos.as_ref().map_or("", |e| &e.0),
            )?),
            None => None,
        };
        Ok(TextTokenizer {
            inner,
            bos,
            eos,
            chat_template,
        })
    }

    /// Token ids of `text`. With `add_special_tokens` the tokenizer's post-processor adds what
    /// the model expects (e.g. BOS) around it; special-token text inside `text` always maps to
    /// the special token's id.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, optionally without special tokens.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// The id of a token's exact text, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Beginning-of-sequence token and id.
    pub fn bos(&self) -> Option<(&str, u32)> {
        self.bos.as_ref().map(|(t, i)| (t.as_str(), *i))
    }

    /// End-of-sequence token and id (generation stops on it).
    pub fn eos(&self) -> Option<(&str, u32)> {
        self.eos.as_ref().map(|(t, i)| (t.as_str(), *i))
    }

    /// The chat template, if the model has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// Renders `messages` with the model's chat template.
    pub fn apply_chat_template(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.chat_template
            .as_ref()
            .ok_or_else(|| Error::Template("the model has no chat template".into()))?
            .render(messages, add_generation_prompt)
    }

    /// The text the chat template puts between the end of an assistant reply and the next
    /// generation point: the end of that turn, then what `messages` adds after `seen` (the
    /// conversation whose last message is the reply), through the next assistant header. With
    /// `reply_ended_with_eos` the reply's own end-of-turn token is not repeated.
    ///
    /// This is how a multi-turn sequence is built token-in, token-out (verl and SGLang do the
    /// same): the reply's tokens stay as sampled, only what follows is rendered and tokenized.
    /// `None` when the template does not render `messages` as `seen` extended.
    pub fn turn_continuation(
        &self,
        seen: &[Message],
        messages: &[Message],
        reply_ended_with_eos: bool,
    ) -> Result<Option<String>> {
        let Some((reply, before)) = seen.split_last() else {
            return Ok(None);
        };
        if messages.len() <= seen.len() || messages[..seen.len()] != *seen {
            return Ok(None);
        }
        let open = self.apply_chat_template(before, true)?;
        let closed = self.apply_chat_template(seen, false)?;
        let full = self.apply_chat_template(messages, true)?;
        let (Some(end_of_turn), Some(after)) = (
            closed
                .strip_prefix(open.as_str())
                .and_then(|turn| turn.strip_prefix(reply.content.as_str())),
            full.strip_prefix(closed.as_str()),
        ) else {
            return Ok(None);
        };
        let end_of_turn = if reply_ended_with_eos {
            let eos = self.eos().map(|(text, _)| text).unwrap_or_default();
            match end_of_turn.strip_prefix(eos) {
                Some(rest) => rest,
                None => return Ok(None),
            }
        } else {
            end_of_turn
        };
        Ok(Some(format!("{end_of_turn}{after}")))
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

fn add_bos_processor(inner: &mut Tokenizer, bos: &str, id: u32) -> Result<()> {
    let processor = TemplateProcessing::builder()
        .try_single(format!("{bos}:0 $A:0"))
        .and_then(|b| b.try_pair(format!("{bos}:0 $A:0 {bos}:1 $B:1")))
        .map_err(|e| Error::Tokenizer(e.to_string()))?
        .special_tokens(vec![(bos.to_string(), id)])
        .build()
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    inner.with_post_processor(Some(processor));
    Ok(())
}
