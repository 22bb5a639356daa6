//! `[EXPLAIN] VACUUM [ORPHANS] [OLDER THAN '<duration>']`: the SQL form of
//! [`nuthatch_catalog::vacuum`], as `REFRESH STALE` is of refresh: `EXPLAIN`
//! lists what would be removed and removes nothing, `ORPHANS` also removes
//! data that has no metadata, and `OLDER THAN` sets how long something must
//! have been left untouched (24 hours unless said).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use nuthatch_catalog::lease::Period;
use nuthatch_catalog::{Leftover, Swept, VacuumOptions};

use crate::session::Session;

/// A parsed vacuum statement.
#[derive(Debug, Clone, Copy)]
pub struct VacuumStatement {
    pub options: VacuumOptions,
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.value.eq_ignore_ascii_case(word))
}

impl VacuumStatement {
    /// Parses `sql` if it is a vacuum; `None` for any other statement.
    pub fn parse(sql: &str) -> Result<Option<VacuumStatement>> {
        let dialect = GenericDialect {};
        let mut parser = Parser::new(&dialect).try_with_sql(sql)?;
        let explain = is_word(&parser.peek_token().token, "EXPLAIN");
        if explain {
            parser.next_token();
        }
        if !is_word(&parser.peek_token().token, "VACUUM") {
            return Ok(None);
        }
        parser.next_token();
        let mut options = VacuumOptions {
            dry_run: explain,
            ..VacuumOptions::default()
        };
        loop {
            let token = parser.next_token().token;
            match token {
                Token::EOF | Token::SemiColon => break,
                t if is_word(&t, "ORPHANS") => options.orphans = true,
                t if is_word(&t, "OLDER") && is_word(&parser.next_token().token, "THAN") => {
                    let Token::SingleQuotedString(text) = parser.next_token().token else {
                        return plan_err!(
                            "VACUUM OLDER THAN takes a quoted duration, such as OLDER THAN '7d'"
                        );
                    };
                    let period: Period = text.parse().map_err(|e: DataFusionError| {
                        DataFusionError::Plan(format!("VACUUM OLDER THAN: {}", e.message()))
                    })?;
                    options.older_than = period.0;
                }
                other => {
                    return plan_err!(
                        "VACUUM takes ORPHANS and OLDER THAN '<duration>' (EXPLAIN VACUUM removes \
                         nothing); found {other}"
                    )
                }
            }
        }
        Ok(Some(VacuumStatement { options }))
    }
}

impl Session {
    /// Carries out a vacuum statement: one row per thing found.
    pub(crate) async fn vacuum_statement(&self, statement: VacuumStatement) -> Result<DataFrame> {
        let options = statement.options;
        let swept = self.engine().catalog().vacuum(options).await?;
        for item in &swept {
            tracing::info!(
                tier = item.tier,
                kind = item.kind.name(),
                path = item.path,
                "{}",
                action(item, &options)
            );
        }
        let batch = swept_batch(&swept, &options)?;
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        self.context().read_table(Arc::new(table))
    }
}

/// What happened to `item`, in words.
fn action(item: &Swept, options: &VacuumOptions) -> &'static str {
    match (item.removed, options.dry_run, item.kind) {
        (true, _, _) => "removed",
        (false, true, _) => "would remove",
        (false, false, Leftover::Orphan) if !options.orphans => "kept: VACUUM ORPHANS removes it",
        (false, false, _) => "could not remove (see the log)",
    }
}

fn swept_batch(swept: &[Swept], options: &VacuumOptions) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&Swept) -> String| {
        Arc::new(StringArray::from_iter_values(swept.iter().map(f))) as ArrayRef
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("tier", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("bytes", DataType::Int64, true),
        Field::new(
            "modified",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("action", DataType::Utf8, false),
    ]));
    let modified = TimestampMicrosecondArray::from_iter(
        swept
            .iter()
            .map(|s| s.modified.map(|m| m.timestamp_micros())),
    )
    .with_timezone("UTC");
    Ok(RecordBatch::try_new(
        schema,
        vec![
            text(&|s| s.tier.clone()),
            text(&|s| s.kind.name().to_string()),
            text(&|s| s.path.clone()),
            Arc::new(Int64Array::from_iter(
                swept.iter().map(|s| s.bytes.map(|b| b as i64)),
            )),
            Arc::new(modified),
            text(&|s| action(s, options).to_string()),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vacuum_statements_parse() {
        let parsed = VacuumStatement::parse("EXPLAIN VACUUM ORPHANS OLDER THAN '7d';")
            .unwrap()
            .unwrap();
        assert!(parsed.options.dry_run && parsed.options.orphans);
        assert_eq!(parsed.options.older_than.as_secs(), 7 * 86400);
        let plain = VacuumStatement::parse("vacuum").unwrap().unwrap();
        assert!(!plain.options.dry_run && !plain.options.orphans);
        assert!(VacuumStatement::parse("SELECT 1").unwrap().is_none());
        let bad = VacuumStatement::parse("VACUUM everything").unwrap_err();
        assert!(bad.to_string().contains("VACUUM takes ORPHANS"), "{bad}");
        let bad = VacuumStatement::parse("VACUUM OLDER THAN 'soon'").unwrap_err();
        assert!(bad.to_string().contains("such as 500ms"), "{bad}");
    }
}
