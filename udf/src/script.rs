//! Splitting a script into statements with the SQL tokenizer.
//!
//! A `;` ends a statement only where the tokenizer sees a semicolon token:
//! not inside quoted strings or identifiers, dollar-quoted strings or
//! comments. Statements keep their own text (comments inside them too), so
//! what runs is what was written; comments between statements are dropped.
//! `CREATE CACHED FUNCTION` is not DataFusion syntax, which is why this
//! splits tokens rather than asking the parser for statements.

use datafusion::common::{DataFusionError, Result};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};

/// The statements of `text`, trimmed, without their `;`.
pub fn split_statements(text: &str) -> Result<Vec<String>> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| {
            DataFusionError::Plan(format!("cannot split the script into statements: {e}"))
        })?;
    let offsets = Offsets::new(text);
    let mut statements = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for token in tokens {
        match token.token {
            Token::Whitespace(_) => {}
            Token::EOF => break,
            Token::SemiColon => {
                if let Some((start, end)) = current.take() {
                    statements.push(text[start..end].trim().to_string());
                }
            }
            _ => {
                let start = offsets.byte(token.span.start);
                let end = offsets.byte(token.span.end);
                current = Some(match current {
                    Some((first, _)) => (first, end),
                    None => (start, end),
                });
            }
        }
    }
    if let Some((start, end)) = current {
        statements.push(text[start..end].trim().to_string());
    }
    Ok(statements)
}

/// Turns the tokenizer's line and column (1-based, in characters) into byte
/// offsets.
struct Offsets<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Offsets<'a> {
    fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Offsets { text, line_starts }
    }

    fn byte(&self, at: Location) -> usize {
        let Some(&line_start) = self.line_starts.get((at.line as usize).saturating_sub(1)) else {
            return self.text.len();
        };
        let line = &self.text[line_start..];
        let column = (at.column as usize).saturating_sub(1);
        line_start
            + line
                .char_indices()
                .nth(column)
                .map(|(i, _)| i)
                .unwrap_or(line.len())
    }
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let script = "SELECT 'a;b'; -- one; two\nSELECT 2 /* ; */;\n\n";
        assert_eq!(
            split_statements(script).unwrap(),
            vec!["SELECT 'a;b'", "SELECT 2"]
        );
    }

    #[test]
    fn keeps_bodies_with_placeholders_dollar_quotes_and_unicode_whole() {
        let script = "-- definitions\nCREATE CACHED FUNCTION f(d BIGINT) AS\n  SELECT $d - 1 AS \"x;y\", 'é;ü' AS s;\nSELECT $$a;b$$; SELECT 3";
        assert_eq!(
            split_statements(script).unwrap(),
            vec![
                "CREATE CACHED FUNCTION f(d BIGINT) AS\n  SELECT $d - 1 AS \"x;y\", 'é;ü' AS s",
                "SELECT $$a;b$$",
                "SELECT 3"
            ]
        );
    }

    #[test]
    fn an_unterminated_string_is_an_error_with_its_place() {
        let err = split_statements("SELECT 1;\nSELECT 'oops")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Line: 2"), "{err}");
    }
}
