//! The prompt's line editor: rustyline with a helper that knows SQL.
//!
//! - Enter ends the input only when it is complete: a backslash command,
//!   or statements whose last token is `;` by the SQL tokenizer, so a `;`
//!   inside a string, a comment or a `$$` body does not end it, and an
//!   unterminated string keeps the input open.
//! - Tab completes from [`crate::complete`].
//! - With `--color`, keywords, strings and comments are highlighted.

use std::borrow::Cow;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use crate::complete::{candidates, Names};

pub type PromptEditor = Editor<PromptHelper, FileHistory>;

#[derive(Default)]
pub struct PromptHelper {
    pub names: Names,
    pub color: bool,
    /// A y/n question is being read: any answer is complete.
    pub asking: bool,
    files: FilenameCompleter,
}

impl PromptHelper {
    pub fn new(color: bool) -> PromptHelper {
        PromptHelper {
            color,
            ..PromptHelper::default()
        }
    }
}

/// Whether `text` can run as it is: nothing but whitespace, a command, or
/// statements ending in `;`.
pub fn statement_complete(text: &str) -> bool {
    let trimmed = text.trim();
    if trimmed.is_empty()
        || trimmed.starts_with('\\')
        || matches!(trimmed.to_ascii_lowercase().as_str(), "quit" | "exit")
    {
        return true;
    }
    match Tokenizer::new(&GenericDialect {}, text).tokenize() {
        Ok(tokens) => tokens
            .iter()
            .rev()
            .find(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
            .is_none_or(|t| *t == Token::SemiColon),
        // An unterminated string, quoted name or comment: more is coming.
        // Other tokenizer errors are reported when the text runs.
        Err(e) => {
            let message = e.to_string().to_ascii_lowercase();
            !(message.contains("unterminated") || message.contains("eof"))
        }
    }
}

impl Validator for PromptHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        if self.asking || statement_complete(ctx.input()) {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl Completer for PromptHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        if self.asking {
            return Ok((pos, Vec::new()));
        }
        let left = &line[..pos];
        if left.trim_start().starts_with("\\i ") {
            return self.files.complete(line, pos, ctx);
        }
        let (start, found) = candidates(&self.names, left);
        Ok((
            start,
            found
                .into_iter()
                .map(|c| Pair {
                    display: c.display,
                    replacement: c.replacement,
                })
                .collect(),
        ))
    }
}

impl Hinter for PromptHelper {
    type Hint = String;
}

impl Helper for PromptHelper {}

const KEYWORD: &str = "\x1b[1;34m";
const STRING: &str = "\x1b[32m";
const COMMENT: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

impl Highlighter for PromptHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if !self.color || self.asking {
            return Cow::Borrowed(line);
        }
        Cow::Owned(highlight_sql(line))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        self.color
    }
}

/// `line` with ANSI colours around keywords, strings and `--` comments.
/// A light scan rather than the tokenizer, so half-typed input (an open
/// string) still colours.
pub fn highlight_sql(line: &str) -> String {
    let mut out = String::with_capacity(line.len() * 2);
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c == '-' && chars.get(i + 1).is_some_and(|(_, n)| *n == '-') {
            let end = line[at..].find('\n').map_or(line.len(), |n| at + n);
            out.push_str(COMMENT);
            out.push_str(&line[at..end]);
            out.push_str(RESET);
            i = chars
                .iter()
                .position(|(p, _)| *p >= end)
                .unwrap_or(chars.len());
        } else if c == '\'' {
            let mut j = i + 1;
            while j < chars.len() && chars[j].1 != '\'' {
                j += 1;
            }
            let end = chars.get(j + 1).map_or(line.len(), |(p, _)| *p);
            out.push_str(STRING);
            out.push_str(&line[at..end]);
            out.push_str(RESET);
            i = j + 1;
        } else if c.is_alphabetic() || c == '_' {
            let mut j = i;
            while j < chars.len() && (chars[j].1.is_alphanumeric() || chars[j].1 == '_') {
                j += 1;
            }
            let end = chars.get(j).map_or(line.len(), |(p, _)| *p);
            let word = &line[at..end];
            let upper = word.to_ascii_uppercase();
            if ALL_KEYWORDS.binary_search(&upper.as_str()).is_ok() {
                out.push_str(KEYWORD);
                out.push_str(word);
                out.push_str(RESET);
            } else {
                out.push_str(word);
            }
            i = j;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_complete_at_a_semicolon_outside_strings_comments_and_bodies() {
        assert!(statement_complete("SELECT 1;"));
        assert!(statement_complete("SELECT 1; -- done\n"));
        assert!(statement_complete("\\d"));
        assert!(statement_complete("   "));
        assert!(!statement_complete("SELECT 1"));
        assert!(!statement_complete("SELECT ';"));
        assert!(!statement_complete("SELECT 1 -- ;"));
        assert!(!statement_complete("SELECT 1 /* ; */"));
        assert!(!statement_complete(
            "CREATE CACHED FUNCTION f() AS $$ SELECT 1;"
        ));
        assert!(statement_complete(
            "CREATE CACHED FUNCTION f() AS $$ SELECT 1; $$;"
        ));
    }

    #[test]
    fn keywords_strings_and_comments_are_coloured() {
        let text = highlight_sql("select 'a;' -- x");
        assert_eq!(
            text,
            format!("{KEYWORD}select{RESET} {STRING}'a;'{RESET} {COMMENT}-- x{RESET}")
        );
        assert_eq!(highlight_sql("lat"), "lat");
    }
}
