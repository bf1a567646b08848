//! The crate's rooms depend one way, `train → sample → model → kernels`: no code in a room names a
//! room above it. Read from the sources, so a `use` that reaches up fails here, not in review.

use std::path::{Path, PathBuf};

/// Each room and the rooms its code may not name.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("kernels", &["model", "sample", "train"]),
    ("model", &["sample", "train"]),
    ("sample", &["train"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_room_reaches_up() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut reaches = Vec::new();
    let mut files_read = 0;
    for (room, above) in FORBIDDEN {
        let mut files = Vec::new();
        rust_files(&src.join(room), &mut files);
        assert!(!files.is_empty(), "no sources under src/{room}");
        for file in files {
            files_read += 1;
            let text = std::fs::read_to_string(&file).unwrap();
            for (i, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for up in *above {
                    if line.contains(&format!("crate::{up}")) {
                        reaches.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(files_read >= 15, "only {files_read} files read");
    assert!(
        reaches.is_empty(),
        "code that reaches up:\n{}",
        reaches.join("\n")
    );
}
