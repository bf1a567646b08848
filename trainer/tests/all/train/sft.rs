//! An SFT episode is one sequence, laid out as the sampler lays out an episode: every assistant
//! message (with its end-of-turn token) is a target, everything else is context.

use toolenv::chat::Message;
use trainer::train::sft::{tokenize, Example};

use crate::common::smollm2;

#[test]
fn a_multi_turn_example_is_one_sequence_with_every_reply_a_target() {
    let tokenizer = &smollm2().tokenizer;
    let call = "<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"17*23\"}}\n</tool_call>";
    let answer = "<response> 391 </response>";
    let example = Example {
        messages: vec![
            Message::system("Use the tools."),
            Message::user("What is 17*23?"),
            Message::assistant(call),
            Message::user(
                "<obs> [{\"name\": \"calculator\", \"results\": {\"value\": 391}}] </obs>",
            ),
            Message::assistant(answer),
        ],
    };
    let seq = tokenize(tokenizer, &example).unwrap();
    assert_eq!(seq.ids.len(), seq.mask.len());
    // Read back, it is the conversation as the template renders it.
    let template_messages: Vec<trainer::Message> = example
        .messages
        .iter()
        .map(|m| {
            let role = match m.role {
                toolenv::chat::Role::System => "system",
                toolenv::chat::Role::User => "user",
                toolenv::chat::Role::Assistant => "assistant",
            };
            trainer::Message::new(role, m.content.clone())
        })
        .collect();
    let rendered = tokenizer
        .apply_chat_template(&template_messages, false)
        .unwrap();
    let text = tokenizer.decode(&seq.ids, false).unwrap();
    assert_eq!(format!("{text}\n"), rendered);
    // The targets are exactly the two replies, each closed by the end-of-turn token.
    let mut targets = Vec::new();
    let mut run = Vec::new();
    for (&id, &m) in seq.ids.iter().zip(&seq.mask) {
        if m == 1 {
            run.push(id);
        } else if !run.is_empty() {
            targets.push(std::mem::take(&mut run));
        }
    }
    targets.push(run);
    let targets: Vec<String> = targets
        .iter()
        .map(|t| tokenizer.decode(t, false).unwrap())
        .collect();
    assert_eq!(
        targets,
        [format!("{call}<|im_end|>"), format!("{answer}<|im_end|>")]
    );
}
