//! Provenance: what an entry was computed by and from.
//!
//! Every entry this implementation writes records, in extra columns of its
//! metadata row (which Python's reader ignores):
//!
//! - `fingerprint`: the fingerprint of the definition that computed it
//!   (see `nuthatch_udf`'s `fingerprint` module for what it covers);
//! - `arguments`: the arguments its compute was handed, as SQL literals,
//!   so `nuthatch refresh` can compute it again (a key cannot be read
//!   back into arguments: it holds values, not names);
//! - `lineage`: the inputs its compute read, one per line: other entries
//!   (function, key, namespace, tier, backend, version and the commit
//!   stamp of the row it read) and plain files (URL, size, last
//!   modification, ETag).
//!
//! The lineage text starts with a format line, so a row written by a later
//! release with another format reads as [`Lineage::Unreadable`], never as
//! an error: staleness then says "unknown" and names the reason.

use std::sync::Mutex;

/// The format line lineage text starts with.
const FORMAT_LINE: &str = "nuthatch-lineage 1";

/// One input an entry's compute read.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Entry(InputEntry),
    File(InputFile),
}

/// Another entry, as it was when read.
#[derive(Debug, Clone, PartialEq)]
pub struct InputEntry {
    pub function: String,
    /// The key as the store spells it (`function/values`).
    pub key: String,
    pub namespace: Option<String>,
    /// The tier it was read from, by name.
    pub tier: String,
    pub backend: String,
    pub version: Option<String>,
    /// The `last_modified` stamp of the row read: a row with another stamp
    /// is another write of the entry.
    pub committed: f64,
}

/// A file the compute scanned (a Parquet dataset's file, say).
#[derive(Debug, Clone, PartialEq)]
pub struct InputFile {
    pub url: String,
    pub size: u64,
    /// UTC epoch microseconds.
    pub modified: i64,
    pub etag: Option<String>,
}

impl Input {
    /// `function(key)` or the file's URL, for messages.
    pub fn describe(&self) -> String {
        match self {
            Input::Entry(entry) => entry.describe(),
            Input::File(file) => file.url.clone(),
        }
    }
}

impl InputEntry {
    /// `key` with its namespace, as messages show an entry.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} (namespace {ns})", self.key),
            None => self.key.clone(),
        }
    }

    /// Whether this names the same stored entry as `other`, whenever read.
    pub fn same_entry(&self, other: &InputEntry) -> bool {
        self.key == other.key
            && self.namespace == other.namespace
            && self.tier == other.tier
            && self.backend == other.backend
    }
}

/// What a metadata row says about an entry's inputs.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Lineage {
    /// Nothing recorded: a row Python wrote, or one written before
    /// lineage was kept.
    #[default]
    Unrecorded,
    Recorded(Vec<Input>),
    /// Recorded, but not in a form this build reads (a later release's);
    /// why, for messages.
    Unreadable(String),
}

impl Lineage {
    /// The text of the `lineage` column; `None` for nothing recorded.
    pub fn encode(&self) -> Option<String> {
        let Lineage::Recorded(inputs) = self else {
            return None;
        };
        let mut lines = vec![FORMAT_LINE.to_string()];
        for input in inputs {
            lines.push(match input {
                Input::Entry(e) => [
                    "entry",
                    &e.function,
                    &e.key,
                    e.namespace.as_deref().unwrap_or(""),
                    &e.tier,
                    &e.backend,
                    e.version.as_deref().unwrap_or(""),
                    &e.committed.to_string(),
                ]
                .join("\t"),
                Input::File(f) => [
                    "file",
                    &f.url,
                    &f.size.to_string(),
                    &f.modified.to_string(),
                    f.etag.as_deref().unwrap_or(""),
                ]
                .join("\t"),
            });
        }
        Some(lines.join("\n"))
    }

    /// Reads the `lineage` column; never fails (see [`Lineage::Unreadable`]).
    pub fn decode(text: Option<&str>) -> Lineage {
        let Some(text) = text else {
            return Lineage::Unrecorded;
        };
        let mut lines = text.lines();
        match lines.next() {
            Some(FORMAT_LINE) => {}
            Some(other) => {
                return Lineage::Unreadable(format!(
                    "its lineage is in a format this build does not read ('{other}')"
                ))
            }
            None => return Lineage::Recorded(Vec::new()),
        }
        match lines.map(decode_input).collect() {
            Ok(inputs) => Lineage::Recorded(inputs),
            Err(why) => Lineage::Unreadable(format!("its lineage does not read: {why}")),
        }
    }
}

fn decode_input(line: &str) -> Result<Input, String> {
    let fields: Vec<&str> = line.split('\t').collect();
    let optional = |text: &str| (!text.is_empty()).then(|| text.to_string());
    let number = |text: &str| -> Result<i64, String> {
        text.parse()
            .map_err(|_| format!("'{text}' is not a number in '{line}'"))
    };
    match fields.as_slice() {
        ["entry", function, key, namespace, tier, backend, version, committed] => {
            Ok(Input::Entry(InputEntry {
                function: function.to_string(),
                key: key.to_string(),
                namespace: optional(namespace),
                tier: tier.to_string(),
                backend: backend.to_string(),
                version: optional(version),
                committed: committed
                    .parse()
                    .map_err(|_| format!("'{committed}' is not a commit stamp"))?,
            }))
        }
        ["file", url, size, modified, etag] => Ok(Input::File(InputFile {
            url: url.to_string(),
            size: number(size)? as u64,
            modified: number(modified)?,
            etag: optional(etag),
        })),
        _ => Err(format!("'{line}' is no input")),
    }
}

/// What a compute has read so far, as the calls of its body and its scans
/// report it; each input once.
#[derive(Debug, Default)]
pub struct Reads {
    inputs: Mutex<Vec<Input>>,
}

impl Reads {
    /// Notes `input`; an entry read again (by a second call of the body)
    /// keeps the later stamp.
    pub fn note(&self, input: Input) {
        let mut inputs = self.inputs.lock().expect("reads poisoned");
        let same = inputs.iter().position(|known| match (known, &input) {
            (Input::Entry(a), Input::Entry(b)) => a.same_entry(b),
            (Input::File(a), Input::File(b)) => a.url == b.url,
            _ => false,
        });
        match same {
            Some(at) => inputs[at] = input,
            None => inputs.push(input),
        }
    }

    /// The inputs noted so far, as a row records them.
    pub fn lineage(&self) -> Lineage {
        Lineage::Recorded(self.inputs.lock().expect("reads poisoned").clone())
    }
}

/// What a write records of where its rows came from.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub fingerprint: Option<crate::stale::Fingerprint>,
    /// The arguments as `(name, SQL literal)`.
    pub arguments: Option<Vec<(String, String)>>,
    /// Filled while the compute runs; read when the row is committed.
    pub reads: Option<std::sync::Arc<Reads>>,
    /// For a copy of an entry (to the local tier, or to another backend):
    /// the lineage of what was copied.
    pub copied: Option<Lineage>,
}

impl Provenance {
    /// The lineage to record now.
    pub fn lineage(&self) -> Lineage {
        match (&self.copied, &self.reads) {
            (Some(lineage), _) => lineage.clone(),
            (None, Some(reads)) => reads.lineage(),
            (None, None) => Lineage::Unrecorded,
        }
    }
}

/// The `arguments` column: one `name\tliteral` per line.
pub fn encode_arguments(arguments: &[(String, String)]) -> String {
    let lines: Vec<String> = arguments
        .iter()
        .map(|(name, literal)| format!("{name}\t{literal}"))
        .collect();
    lines.join("\n")
}

/// Reads the `arguments` column; `None` for text this build cannot read.
pub fn decode_arguments(text: &str) -> Option<Vec<(String, String)>> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            line.split_once('\t')
                .map(|(name, literal)| (name.to_string(), literal.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_round_trips_and_a_later_format_is_unreadable() {
        let lineage = Lineage::Recorded(vec![
            Input::Entry(InputEntry {
                function: "my_first_cache".into(),
                key: "my_first_cache/".into(),
                namespace: None,
                tier: "root".into(),
                backend: "parquet".into(),
                version: Some("1".into()),
                committed: 1.7654e15,
            }),
            Input::File(InputFile {
                url: "file:///data/a.parquet".into(),
                size: 1234,
                modified: 1_700_000_000_000_000,
                etag: None,
            }),
        ]);
        let text = lineage.encode().unwrap();
        assert_eq!(Lineage::decode(Some(&text)), lineage);
        assert_eq!(Lineage::decode(None), Lineage::Unrecorded);
        assert!(matches!(
            Lineage::decode(Some("nuthatch-lineage 2\nwhatever")),
            Lineage::Unreadable(why) if why.contains("nuthatch-lineage 2")
        ));
        assert!(matches!(
            Lineage::decode(Some("nuthatch-lineage 1\nentry\tx")),
            Lineage::Unreadable(_)
        ));
        let args = vec![("agg_days".to_string(), "7".to_string())];
        assert_eq!(decode_arguments(&encode_arguments(&args)), Some(args));
    }
}
