//! How the binaries print an error: the message and its chain of causes, each cause once.
//! Many of our errors already show their cause in their own message (`"{path}: {source}"`, so
//! that `to_string()` alone says why) and also expose it as `source()`, so printing the whole
//! chain (anyhow's `{:#}`) repeated it: "x.toml: No such file (os error 2): No such file
//! (os error 2)". A cause whose text the message already holds is left out.

use std::error::Error;

/// `error`'s message followed by `": cause"` for every cause in its chain that the text so far
/// does not already contain.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct Shown {
        path: String,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("loading the config")]
    struct Hidden {
        source: Shown,
    }

    #[test]
    fn each_cause_is_printed_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let shown = Shown {
            path: "a.toml".into(),
            source: io(),
        };
        assert_eq!(error_chain(&shown), "a.toml: no such file");
        let hidden = Hidden {
            source: Shown {
                path: "a.toml".into(),
                source: io(),
            },
        };
        assert_eq!(
            error_chain(&hidden),
            "loading the config: a.toml: no such file"
        );
        let wrapped = anyhow::Error::new(Shown {
            path: "b.toml".into(),
            source: io(),
        })
        .context("reading b");
        assert_eq!(
            error_chain(wrapped.as_ref()),
            "reading b: b.toml: no such file"
        );
    }
}
