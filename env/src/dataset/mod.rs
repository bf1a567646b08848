//! Datasets: reading the ToolRL and API-Bank files of `data/` and the native executable tasks into one
//! [`Sample`] type an eval or a rollout can iterate over.
//!
//! Four formats, one JSON object a line: ToolRL ([`toolrl`]: `id`, `system`, `user`, `output`),
//! API-Bank ([`apibank`]: `id`, `system`, `user`, `answer`), executable tasks ([`tasks`]: `id`,
//! `kind`, `question`, `answer`, `tools`, `solution`) and BFCL's files ([`bfcl`]: `id`,
//! `question` as a list of turns, `function`; possible answers from the file beside). [`load`] takes a file or one of the
//! [`NAMES`], recognises the format from the fields of the first line unless told, and checks every
//! line before returning: a bad line is an error naming the file, the line and the field, never a
//! skipped sample or a panic. Names resolve against the repository root found from the current
//! directory upwards, then against the root this crate was built from; the error lists every path
//! tried, so a run from an unexpected directory says where it looked.

pub mod apibank;
pub mod bfcl;
mod json;
pub mod tasks;
pub mod toolrl;

pub use apibank::ApiBankSample;
pub use bfcl::BfclEntry;
pub use tasks::{Task, TaskKind};
pub use toolrl::ToolRlSample;

use crate::config::Location;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A BFCL category's question file, relative to the repository root.
macro_rules! bfcl {
    ($category:literal) => {
        concat!(".bfcl/bfcl_eval/data/BFCL_v4_", $category, ".json")
    };
}

/// The dataset names [`load`] knows, each with its files relative to the repository root.
/// `bfcl-<category>` are BFCL's, by its category names, from the data `scripts/fetch-bfcl.sh`
/// unpacks.
pub const NAMES: &[(&str, &[&str])] = &[
    ("toolrl", &["data/toolrl/test.jsonl"]),
    ("toolrl-sft", &["data/toolrl/sft.jsonl"]),
    (
        "apibank",
        &["data/apibank/level-1.jsonl", "data/apibank/level-2.jsonl"],
    ),
    ("apibank-1", &["data/apibank/level-1.jsonl"]),
    ("apibank-2", &["data/apibank/level-2.jsonl"]),
    ("tasks", &["env/data/tasks/test.jsonl"]),
    ("tasks-train", &["env/data/tasks/train.jsonl"]),
    ("bfcl-simple_python", &[bfcl!("simple_python")]),
    ("bfcl-simple_java", &[bfcl!("simple_java")]),
    ("bfcl-simple_javascript", &[bfcl!("simple_javascript")]),
    ("bfcl-multiple", &[bfcl!("multiple")]),
    ("bfcl-parallel", &[bfcl!("parallel")]),
    ("bfcl-parallel_multiple", &[bfcl!("parallel_multiple")]),
    ("bfcl-irrelevance", &[bfcl!("irrelevance")]),
    ("bfcl-live_simple", &[bfcl!("live_simple")]),
    ("bfcl-live_multiple", &[bfcl!("live_multiple")]),
    ("bfcl-live_parallel", &[bfcl!("live_parallel")]),
    (
        "bfcl-live_parallel_multiple",
        &[bfcl!("live_parallel_multiple")],
    ),
    ("bfcl-live_irrelevance", &[bfcl!("live_irrelevance")]),
    ("bfcl-live_relevance", &[bfcl!("live_relevance")]),
    ("bfcl-multi_turn_base", &[bfcl!("multi_turn_base")]),
    (
        "bfcl-multi_turn_miss_func",
        &[bfcl!("multi_turn_miss_func")],
    ),
    (
        "bfcl-multi_turn_miss_param",
        &[bfcl!("multi_turn_miss_param")],
    ),
    (
        "bfcl-multi_turn_long_context",
        &[bfcl!("multi_turn_long_context")],
    ),
    (
        "bfcl-multi-turn",
        &[
            bfcl!("multi_turn_base"),
            bfcl!("multi_turn_miss_func"),
            bfcl!("multi_turn_miss_param"),
            bfcl!("multi_turn_long_context"),
        ],
    ),
    (
        "bfcl-single-turn",
        &[
            bfcl!("simple_python"),
            bfcl!("simple_java"),
            bfcl!("simple_javascript"),
            bfcl!("multiple"),
            bfcl!("parallel"),
            bfcl!("parallel_multiple"),
            bfcl!("irrelevance"),
            bfcl!("live_simple"),
            bfcl!("live_multiple"),
            bfcl!("live_parallel"),
            bfcl!("live_parallel_multiple"),
            bfcl!("live_irrelevance"),
            bfcl!("live_relevance"),
        ],
    ),
    (
        "bfcl",
        &[
            bfcl!("simple_python"),
            bfcl!("simple_java"),
            bfcl!("simple_javascript"),
            bfcl!("multiple"),
            bfcl!("parallel"),
            bfcl!("parallel_multiple"),
            bfcl!("irrelevance"),
            bfcl!("live_simple"),
            bfcl!("live_multiple"),
            bfcl!("live_parallel"),
            bfcl!("live_parallel_multiple"),
            bfcl!("live_irrelevance"),
            bfcl!("live_relevance"),
            bfcl!("multi_turn_base"),
            bfcl!("multi_turn_miss_func"),
            bfcl!("multi_turn_miss_param"),
            bfcl!("multi_turn_long_context"),
        ],
    ),
];

/// A dataset file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// ToolRL's JSONL: `id`, `system`, `user`, `output`.
    ToolRl,
    /// API-Bank as ToolRL evaluates it: `id`, `system`, `user`, `answer`.
    ApiBank,
    /// Native executable tasks: `id`, `kind`, `question`, `answer`, `tools`, `solution`.
    Tasks,
    /// BFCL's question files (`id`, `question` as turns, `function`), with their possible
    /// answers beside them.
    Bfcl,
}

impl Format {
    /// The format's name, as [`Format::from_str`](std::str::FromStr) reads it.
    pub fn name(self) -> &'static str {
        match self {
            Format::ToolRl => "toolrl",
            Format::ApiBank => "apibank",
            Format::Tasks => "tasks",
            Format::Bfcl => "bfcl",
        }
    }

    /// The format a line's fields say, if they say one: `question` means tasks, `output` ToolRL,
    /// `answer` beside `user` API-Bank.
    fn detect(object: &Map<String, Value>) -> Option<Self> {
        if bfcl::detect(object) {
            Some(Format::Bfcl)
        } else if object.contains_key("question") {
            Some(Format::Tasks)
        } else if object.contains_key("output") {
            Some(Format::ToolRl)
        } else if object.contains_key("answer") && object.contains_key("user") {
            Some(Format::ApiBank)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is not one of `toolrl`, `apibank`, `tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown dataset format {0:?}: expected toolrl, apibank, tasks or bfcl")]
pub struct UnknownFormat(pub String);

impl std::str::FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "toolrl" => Ok(Format::ToolRl),
            "apibank" | "api-bank" => Ok(Format::ApiBank),
            "tasks" => Ok(Format::Tasks),
            "bfcl" => Ok(Format::Bfcl),
            _ => Err(UnknownFormat(s.to_string())),
        }
    }
}

/// One sample of any format.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// A ToolRL single-turn sample.
    ToolRl(ToolRlSample),
    /// An API-Bank single-turn sample.
    ApiBank(ApiBankSample),
    /// An executable multi-step task.
    Task(Task),
    /// A BFCL entry.
    Bfcl(BfclEntry),
}

impl Sample {
    /// The sample's id, unique within its dataset.
    pub fn id(&self) -> &str {
        match self {
            Sample::ToolRl(s) => &s.id,
            Sample::ApiBank(s) => &s.id,
            Sample::Task(t) => &t.id,
            Sample::Bfcl(e) => &e.id,
        }
    }

    /// The group the sample is scored in, for per-group accuracy: a BFCL entry's category, a
    /// task's kind, an API-Bank level (`Level1`); ToolRL samples have none.
    pub fn group(&self) -> Option<String> {
        match self {
            Sample::ToolRl(_) => None,
            Sample::ApiBank(s) => Some(format!("Level{}", s.level)),
            Sample::Task(t) => Some(t.kind.name().to_string()),
            Sample::Bfcl(e) => Some(e.category.clone()),
        }
    }

    /// The format the sample was read from.
    pub fn format(&self) -> Format {
        match self {
            Sample::ToolRl(_) => Format::ToolRl,
            Sample::ApiBank(_) => Format::ApiBank,
            Sample::Task(_) => Format::Tasks,
            Sample::Bfcl(_) => Format::Bfcl,
        }
    }
}

/// A loaded dataset: every sample of its files, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// What it was loaded as: a name from [`NAMES`] or the path given.
    pub name: String,
    /// The format of every sample.
    pub format: Format,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// The samples, in file order.
    pub samples: Vec<Sample>,
}

impl Dataset {
    /// The number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Sample> {
        self.samples.iter()
    }

    /// The executable tasks among the samples.
    pub fn tasks(&self) -> impl Iterator<Item = &Task> {
        self.samples.iter().filter_map(|s| match s {
            Sample::Task(t) => Some(t),
            _ => None,
        })
    }

    /// The API-Bank samples among the samples.
    pub fn apibank(&self) -> impl Iterator<Item = &ApiBankSample> {
        self.samples.iter().filter_map(|s| match s {
            Sample::ApiBank(a) => Some(a),
            _ => None,
        })
    }

    /// The BFCL entries among the samples.
    pub fn bfcl(&self) -> impl Iterator<Item = &BfclEntry> {
        self.samples.iter().filter_map(|s| match s {
            Sample::Bfcl(e) => Some(e),
            _ => None,
        })
    }

    /// The ToolRL samples among the samples.
    pub fn toolrl(&self) -> impl Iterator<Item = &ToolRlSample> {
        self.samples.iter().filter_map(|s| match s {
            Sample::ToolRl(t) => Some(t),
            _ => None,
        })
    }
}

impl<'a> IntoIterator for &'a Dataset {
    type Item = &'a Sample;
    type IntoIter = std::slice::Iter<'a, Sample>;

    fn into_iter(self) -> Self::IntoIter {
        self.samples.iter()
    }
}

/// Why a dataset could not be loaded.
#[derive(Debug, Error)]
pub enum DatasetError {
    /// A dataset name whose files were found nowhere.
    #[error("dataset {name:?}: {file} not found{}; tried:\n{}",
        if .file.starts_with(".bfcl/") { " (BFCL's data: scripts/fetch-bfcl.sh fetches it, and scripts/setup.sh runs that)" } else { "" },
        .tried.iter().map(|p| format!("  {}", p.display())).collect::<Vec<_>>().join("\n"))]
    NotFound {
        /// The name asked for.
        name: String,
        /// The file (relative to a repository root) that was looked for.
        file: String,
        /// Every path tried, in order.
        tried: Vec<PathBuf>,
    },
    /// Neither a known name nor an existing file.
    #[error("{0:?} is neither a dataset name ({names}) nor a file", names = NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))]
    Unknown(String),
    /// A file could not be read.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A line, or a field of it, is not what the format requires.
    #[error("{location}: {message}")]
    Invalid {
        /// File, line and field.
        location: Location,
        /// What is wrong.
        message: String,
    },
    /// The first line's fields fit no format, and none was given.
    #[error("{}:{line}: cannot tell the format from the fields {fields:?}: expected `question` \
        (tasks), `output` (toolrl) or `user` + `answer` (apibank)", .path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// Its first non-blank line.
        line: usize,
        /// The fields that line has.
        fields: Vec<String>,
    },
    /// A file with no sample and no format given to say what it would have held.
    #[error("{}: no samples, so no format to recognise", .path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Two samples share an id.
    #[error("{location}: id {id:?} already used at {first}")]
    DuplicateId {
        /// Where the second one is.
        location: Location,
        /// The id.
        id: String,
        /// Where the first one is (boxed: keeps the error, and every `Result`, small).
        first: Box<Location>,
    },
}

/// Loads a dataset by name (one of [`NAMES`]) or path, in `format` or the one its first line's
/// fields say.
pub fn load(path_or_name: &str, format: Option<Format>) -> Result<Dataset, DatasetError> {
    let files = if let Some((_, files)) = NAMES.iter().find(|(n, _)| *n == path_or_name) {
        files
            .iter()
            .map(|f| resolve(path_or_name, f))
            .collect::<Result<Vec<_>, _>>()?
    } else if Path::new(path_or_name).is_file() {
        vec![PathBuf::from(path_or_name)]
    } else {
        return Err(DatasetError::Unknown(path_or_name.to_string()));
    };
    load_files(path_or_name, &files, format)
}

/// Reads `files` as one dataset named `name`; the format comes from the first file's first line
/// unless given, and every file must be in it. Ids must be unique across the files.
pub fn load_files(
    name: &str,
    files: &[PathBuf],
    format: Option<Format>,
) -> Result<Dataset, DatasetError> {
    let mut format = format;
    let mut samples = Vec::new();
    let mut seen: HashMap<String, Location> = HashMap::new();
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
            path: path.clone(),
            source,
        })?;
        let first_of_file = samples.len();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = |field: &str| Location {
                file: path.clone(),
                line: Some(i + 1),
                field: field.to_string(),
            };
            let value: Value = serde_json::from_str(line).map_err(|e| DatasetError::Invalid {
                location: at(""),
                message: format!("not JSON (column {}): {}", e.column(), e),
            })?;
            let object = match value {
                Value::Object(object) => object,
                other => {
                    return Err(DatasetError::Invalid {
                        location: at(""),
                        message: format!("expected a JSON object, found {}", json::kind(&other)),
                    })
                }
            };
            let format = match format {
                Some(f) => f,
                None => {
                    let detected =
                        Format::detect(&object).ok_or_else(|| DatasetError::UnknownFormat {
                            path: path.clone(),
                            line: i + 1,
                            fields: object.keys().cloned().collect(),
                        })?;
                    *format.insert(detected)
                }
            };
            let fields = json::Fields::new(&object, path, i + 1);
            let sample = match format {
                Format::ToolRl => Sample::ToolRl(toolrl::parse(&fields)?),
                Format::ApiBank => Sample::ApiBank(apibank::parse(&fields)?),
                Format::Tasks => Sample::Task(tasks::parse(&fields)?),
                Format::Bfcl => {
                    let category = bfcl::category_of(path).ok_or_else(|| {
                        fields.error(
                            "",
                            "a BFCL question file is named BFCL_v<version>_<category>.json, \
                             which gives its category",
                        )
                    })?;
                    let docs = path
                        .parent()
                        .unwrap_or(Path::new("."))
                        .join("multi_turn_func_doc");
                    Sample::Bfcl(bfcl::parse(&fields, &category, &docs)?)
                }
            };
            let id = sample.id().to_string();
            if let Some(first) = seen.get(&id) {
                return Err(DatasetError::DuplicateId {
                    location: at("id"),
                    id,
                    first: Box::new(first.clone()),
                });
            }
            seen.insert(id, at("id"));
            samples.push(sample);
        }
        if format == Some(Format::Bfcl) {
            if let Some(answers) = bfcl::answers_file(path) {
                let mut entries: Vec<BfclEntry> = samples
                    .drain(first_of_file..)
                    .filter_map(|s| match s {
                        Sample::Bfcl(e) => Some(e),
                        _ => None,
                    })
                    .collect();
                bfcl::join_answers(&mut entries, &answers)?;
                samples.extend(entries.into_iter().map(Sample::Bfcl));
            }
        }
    }
    let format = match (format, files.first()) {
        (Some(f), _) => f,
        (None, Some(path)) => return Err(DatasetError::Empty { path: path.clone() }),
        (None, None) => return Err(DatasetError::Unknown(name.to_string())),
    };
    Ok(Dataset {
        name: name.to_string(),
        format,
        files: files.to_vec(),
        samples,
    })
}

/// Where a dataset name's `file` (relative to a repository root) is: under the first repository
/// root among the current directory and its ancestors, else under the root this crate was built
/// from.
pub(crate) fn resolve(name: &str, file: &str) -> Result<PathBuf, DatasetError> {
    let mut roots = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd.clone());
        // A repository root is recognised by the crate's manifest below it.
        roots.extend(
            cwd.ancestors()
                .skip(1)
                .filter(|d| d.join("env/Cargo.toml").is_file())
                .map(Path::to_path_buf),
        );
    }
    if let Some(built) = Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
        roots.push(built.to_path_buf());
    }
    let mut tried = Vec::new();
    for root in roots {
        let path = root.join(file);
        if path.is_file() {
            return Ok(path);
        }
        if !tried.contains(&path) {
            tried.push(path);
        }
    }
    Err(DatasetError::NotFound {
        name: name.to_string(),
        file: file.to_string(),
        tried,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(lines: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(&path, lines).unwrap();
        (dir, path)
    }

    fn load_text(lines: &str, format: Option<Format>) -> Result<Dataset, DatasetError> {
        let (_dir, path) = write(lines);
        load(path.to_str().unwrap(), format)
    }

    #[test]
    fn detects_each_format() {
        let d = load_text(
            "{\"id\": \"a\", \"system\": \"s\", \"user\": \"u\", \"output\": \"<think></think>\\n<response>hi</response>\"}\n\n",
            None,
        )
        .unwrap();
        assert_eq!((d.format, d.len()), (Format::ToolRl, 1));
        let d = load_text(
            "{\"id\": \"Level2_3\", \"system\": \"s\", \"user\": \"u\", \"answer\": {\"name\": \"f\", \"parameters\": {}}}",
            None,
        )
        .unwrap();
        assert_eq!(d.format, Format::ApiBank);
        assert_eq!(d.apibank().next().unwrap().level, 2);
        let d = load_text(
            "{\"id\": \"t\", \"kind\": \"arithmetic\", \"question\": \"q\", \"answer\": \"1\", \"tools\": [\"calculator\"], \"solution\": [[{\"name\": \"calculator\", \"parameters\": {\"expression\": \"1\"}}]]}",
            None,
        )
        .unwrap();
        assert_eq!(d.format, Format::Tasks);
        assert_eq!(d.tasks().next().unwrap().solution[0][0].name, "calculator");
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = load_text(
            "\n{\"id\": \"a\", \"system\": \"s\", \"user\": 3, \"output\": \"\"}",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("d.jsonl:2: user: expected a string, found a number"),
            "{e}"
        );
        let e = load_text("{\"id\": \"a\"}", None).unwrap_err().to_string();
        assert!(e.contains("d.jsonl:1: cannot tell the format"), "{e}");
        let e = load_text("{\"id\": \"a\"}", Some(Format::ToolRl))
            .unwrap_err()
            .to_string();
        assert!(e.contains("d.jsonl:1: system: missing"), "{e}");
        let e = load_text("[1]", None).unwrap_err().to_string();
        assert!(
            e.contains("d.jsonl:1: expected a JSON object, found an array"),
            "{e}"
        );
        let e = load_text("{nope", None).unwrap_err().to_string();
        assert!(e.contains("d.jsonl:1: not JSON"), "{e}");
        let line = "{\"id\": \"a\", \"system\": \"s\", \"user\": \"u\", \"output\": \"\"}\n";
        let e = load_text(&line.repeat(2), None).unwrap_err().to_string();
        assert!(e.contains("d.jsonl:2: id: id \"a\" already used at"), "{e}");
        assert!(matches!(
            load_text("", None),
            Err(DatasetError::Empty { .. })
        ));
        assert!(load_text("", Some(Format::Tasks)).unwrap().is_empty());
        let e = load("no-such-dataset", None).unwrap_err().to_string();
        assert!(e.contains("neither a dataset name (toolrl, "), "{e}");
    }

    #[test]
    fn format_names_round_trip() {
        for f in [Format::ToolRl, Format::ApiBank, Format::Tasks, Format::Bfcl] {
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
        }
        assert!("csv".parse::<Format>().is_err());
    }
}
