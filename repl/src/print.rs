//! Printing results as they arrive.
//!
//! CSV, TSV, JSON and ND-JSON are written batch by batch, so a large
//! result streams to the screen or a pipe in bounded memory. The table
//! format needs column widths before its first line: it takes them from
//! the first rows (up to `--maxrows`, or [`WIDTH_SAMPLE`] rows when every
//! row is shown), prints those, and lays out later rows in the same
//! widths, cutting longer cells with `…`. Rows past `--maxrows` are only
//! counted. A pager, when asked for, reads the same stream ([`Pager`]).

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::{DataFusionError, Result};

use crate::args::{Format, MaxRows};

/// Rows whose cells set the table's column widths when all rows print.
pub const WIDTH_SAMPLE: usize = 1000;

/// How results print; the prompt changes these with `\pset`, `\timing`
/// and `\quiet`.
#[derive(Debug, Clone)]
pub struct PrintOptions {
    pub format: Format,
    pub maxrows: MaxRows,
    /// No call reports, no footer.
    pub quiet: bool,
    /// The footer says how long the statement took.
    pub timing: bool,
    /// The pager command, when results are paged.
    pub pager: Option<String>,
}

impl PrintOptions {
    /// The options the command line sets.
    pub fn from_args(args: &crate::Args) -> PrintOptions {
        PrintOptions {
            format: args.format,
            maxrows: args.maxrows,
            quiet: args.quiet,
            timing: true,
            pager: args.pager.then(Pager::command),
        }
    }

    /// Where the footer and call reports go: with the rows in the table
    /// format, which is for people; on stderr otherwise, so that stdout
    /// carries nothing but the data.
    pub fn notes_with_data(&self) -> bool {
        self.format == Format::Table
    }
}

/// How many rows a result had and how many were printed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Printed {
    pub rows: usize,
    pub shown: usize,
}

/// Writes one result to `out` in the chosen format as batches arrive.
pub struct Printer<W: Write> {
    writer: Writer<W>,
    printed: Printed,
}

enum Writer<W: Write> {
    /// A result without columns (DDL, SET): nothing to print.
    Nothing,
    Table(Box<TableWriter>, W),
    /// The header line is kept for a result without rows, for which arrow
    /// writes nothing.
    Csv(Box<arrow::csv::Writer<W>>, String),
    Json(arrow::json::ArrayWriter<W>),
    NdJson(arrow::json::LineDelimitedWriter<W>),
}

impl<W: Write> Printer<W> {
    pub fn new(options: &PrintOptions, schema: &SchemaRef, out: W) -> Printer<W> {
        let writer = if schema.fields().is_empty() {
            Writer::Nothing
        } else {
            match options.format {
                Format::Table => Writer::Table(
                    Box::new(TableWriter::new(schema, options.maxrows.limit())),
                    out,
                ),
                Format::Csv | Format::Tsv => {
                    let delimiter = if options.format == Format::Tsv {
                        b'\t'
                    } else {
                        b','
                    };
                    let names: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    Writer::Csv(
                        Box::new(
                            arrow::csv::WriterBuilder::new()
                                .with_header(true)
                                .with_delimiter(delimiter)
                                .build(out),
                        ),
                        names.join(&char::from(delimiter).to_string()),
                    )
                }
                Format::Json => Writer::Json(arrow::json::ArrayWriter::new(out)),
                Format::NdJson => Writer::NdJson(arrow::json::LineDelimitedWriter::new(out)),
            }
        };
        Printer {
            writer,
            printed: Printed::default(),
        }
    }

    /// Prints `batch` (or the part of it the table shows) at once.
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<()> {
        self.printed.rows += batch.num_rows();
        if batch.num_rows() == 0 {
            return Ok(());
        }
        match &mut self.writer {
            Writer::Nothing => {}
            Writer::Table(table, out) => {
                table.push(batch, out)?;
                out.flush()?;
            }
            // arrow's CSV writer flushes into `out` after every batch.
            Writer::Csv(writer, _) => writer.write(batch)?,
            Writer::Json(writer) => {
                writer.write(batch)?;
                writer.get_mut().flush()?;
            }
            Writer::NdJson(writer) => {
                writer.write(batch)?;
                writer.get_mut().flush()?;
            }
        }
        Ok(())
    }

    /// Ends the result (closing brackets and borders); returns the writer.
    pub fn finish(self) -> Result<(Printed, Option<W>)> {
        let mut printed = self.printed;
        let out = match self.writer {
            Writer::Nothing => None,
            Writer::Table(mut table, mut out) => {
                table.finish(&mut out)?;
                printed.shown = table.shown;
                Some(out)
            }
            Writer::Csv(writer, header) => {
                printed.shown = printed.rows;
                let mut out = writer.into_inner();
                if printed.rows == 0 {
                    writeln!(out, "{header}")?;
                }
                Some(out)
            }
            Writer::Json(mut writer) => {
                printed.shown = printed.rows;
                writer.finish()?;
                let mut out = writer.into_inner();
                writeln!(out)?;
                Some(out)
            }
            Writer::NdJson(mut writer) => {
                printed.shown = printed.rows;
                writer.finish()?;
                Some(writer.into_inner())
            }
        };
        if let Some(mut out) = out {
            out.flush()?;
            return Ok((printed, Some(out)));
        }
        Ok((printed, None))
    }
}

/// Prints whole results (the management commands' listings).
pub fn print_batches(
    batches: &[RecordBatch],
    options: &PrintOptions,
    out: &mut impl Write,
) -> Result<()> {
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let mut printer = Printer::new(options, &first.schema(), &mut *out);
    for batch in batches {
        printer.batch(batch)?;
    }
    let (printed, _) = printer.finish()?;
    if printed.shown < printed.rows {
        writeln!(
            out,
            "Showing {} of {} rows (--maxrows {}).",
            printed.shown, printed.rows, options.maxrows
        )?;
    }
    Ok(())
}

/// The table format, laid out as arrow's pretty printer does.
struct TableWriter {
    headers: Vec<String>,
    limit: Option<usize>,
    /// Rows held back until the widths are known.
    pending: Vec<Vec<String>>,
    widths: Option<Vec<usize>>,
    shown: usize,
    /// The bottom border is printed.
    closed: bool,
}

impl TableWriter {
    fn new(schema: &SchemaRef, limit: Option<usize>) -> TableWriter {
        TableWriter {
            headers: schema.fields().iter().map(|f| f.name().clone()).collect(),
            limit,
            pending: Vec::new(),
            widths: None,
            shown: 0,
            closed: false,
        }
    }

    /// Rows the table may still show.
    fn room(&self) -> usize {
        match self.limit {
            Some(limit) => limit.saturating_sub(self.shown + self.pending.len()),
            None => usize::MAX,
        }
    }

    fn push(&mut self, batch: &RecordBatch, out: &mut impl Write) -> Result<()> {
        let take = batch.num_rows().min(self.room());
        let rows = cells(&batch.slice(0, take))?;
        if self.widths.is_none() {
            self.pending.extend(rows);
            let full = self.room() == 0;
            if full || self.pending.len() >= WIDTH_SAMPLE {
                self.start(out)?;
            }
            if full {
                self.close(out)?;
            }
            return Ok(());
        }
        for row in rows {
            self.row(&row, out)?;
        }
        if self.room() == 0 {
            self.close(out)?;
        }
        Ok(())
    }

    /// Fixes the widths from the held rows and prints them with the header.
    fn start(&mut self, out: &mut impl Write) -> Result<()> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.pending {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        self.widths = Some(widths);
        self.border(out)?;
        let headers = self.headers.clone();
        self.line(&headers, out)?;
        self.border(out)?;
        for row in std::mem::take(&mut self.pending) {
            self.row(&row, out)?;
        }
        Ok(())
    }

    fn row(&mut self, row: &[String], out: &mut impl Write) -> Result<()> {
        self.shown += 1;
        self.line(row, out)
    }

    fn line(&self, cells: &[String], out: &mut impl Write) -> Result<()> {
        let widths = self.widths.as_ref().expect("widths are set");
        let mut line = String::from("|");
        for (cell, width) in cells.iter().zip(widths) {
            line.push(' ');
            line.push_str(&fit(cell, *width));
            line.push_str(" |");
        }
        writeln!(out, "{line}")?;
        Ok(())
    }

    fn border(&self, out: &mut impl Write) -> Result<()> {
        let widths = self.widths.as_ref().expect("widths are set");
        let mut line = String::from("+");
        for width in widths {
            line.push_str(&"-".repeat(width + 2));
            line.push('+');
        }
        writeln!(out, "{line}")?;
        Ok(())
    }

    fn close(&mut self, out: &mut impl Write) -> Result<()> {
        if !self.closed {
            self.closed = true;
            self.border(out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut impl Write) -> Result<()> {
        if self.widths.is_none() {
            self.start(out)?;
        }
        self.close(out)
    }
}

/// `cell` padded to `width` characters, or cut to it with `…`.
fn fit(cell: &str, width: usize) -> String {
    let length = cell.chars().count();
    if length <= width {
        let mut padded = cell.to_string();
        padded.extend(std::iter::repeat_n(' ', width - length));
        padded
    } else {
        let mut cut: String = cell.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The cells of `batch` as text, one line each.
fn cells(batch: &RecordBatch) -> Result<Vec<Vec<String>>> {
    let options = FormatOptions::default();
    let formatters = batch
        .columns()
        .iter()
        .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|row| {
            formatters
                .iter()
                .map(|f| {
                    f.value(row)
                        .to_string()
                        .replace('\n', "\\n")
                        .replace('\t', "\\t")
                })
                .collect()
        })
        .collect())
}

/// A pager reading one result on its stdin.
pub struct Pager {
    child: Child,
}

impl Pager {
    /// The pager to use: $NUTHATCH_PAGER, else $PAGER, else less.
    pub fn command() -> String {
        ["NUTHATCH_PAGER", "PAGER"]
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .find(|value| !value.trim().is_empty())
            .unwrap_or_else(|| "less -SFRX".to_string())
    }

    pub fn start(command: &str) -> Result<(Pager, ChildStdin)> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| {
                DataFusionError::Execution(format!(
                    "cannot start the pager '{command}': {e}; set NUTHATCH_PAGER, or leave out \
                     --pager (\\pset pager off)"
                ))
            })?;
        let stdin = child.stdin.take().expect("the pager's stdin is piped");
        Ok((Pager { child }, stdin))
    }

    /// Waits for the person to quit the pager.
    pub fn wait(mut self) {
        let _ = self.child.wait();
    }

    /// The person quit the pager before the result ended.
    pub fn quit(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(from: i64, to: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let n: Vec<i64> = (from..to).collect();
        let names: Vec<Option<String>> = n.iter().map(|i| Some("x".repeat(*i as usize))).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(n)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    fn options(format: Format, maxrows: MaxRows) -> PrintOptions {
        PrintOptions {
            format,
            maxrows,
            quiet: false,
            timing: true,
            pager: None,
        }
    }

    #[test]
    fn a_table_matches_arrows_layout_and_stops_at_maxrows() {
        let batches = [batch(1, 3), batch(3, 5)];
        let mut ours = Vec::new();
        print_batches(
            &batches,
            &options(Format::Table, MaxRows::Unlimited),
            &mut ours,
        )
        .unwrap();
        let arrows = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert_eq!(String::from_utf8(ours).unwrap(), format!("{arrows}\n"));

        let mut limited = Vec::new();
        print_batches(
            &batches,
            &options(Format::Table, MaxRows::Limit(3)),
            &mut limited,
        )
        .unwrap();
        let text = String::from_utf8(limited).unwrap();
        assert!(text.contains("| 3 | xxx  |"), "{text}");
        assert!(!text.contains("| 4 "), "{text}");
        assert!(
            text.ends_with("Showing 3 of 4 rows (--maxrows 3).\n"),
            "{text}"
        );
    }

    #[test]
    fn rows_after_the_width_sample_are_cut_to_the_widths() {
        let schema = batch(0, 1).schema();
        let mut out = Vec::new();
        let mut printer = Printer::new(
            &options(Format::Table, MaxRows::Unlimited),
            &schema,
            &mut out,
        );
        printer.batch(&batch(1, WIDTH_SAMPLE as i64 + 1)).unwrap();
        let wide = batch(2000, 2001);
        printer.batch(&wide).unwrap();
        let (printed, _) = printer.finish().unwrap();
        assert_eq!(
            (printed.rows, printed.shown),
            (WIDTH_SAMPLE + 1, WIDTH_SAMPLE + 1)
        );
        let text = String::from_utf8(out).unwrap();
        let last = text.lines().rev().nth(1).unwrap();
        assert!(
            last.starts_with("| 2000 | xxx") && last.ends_with("x… |"),
            "{last}"
        );
        assert_eq!(
            last.chars().count(),
            text.lines().next().unwrap().chars().count()
        );
    }

    #[test]
    fn machine_formats_stream_every_row() {
        let batches = [batch(1, 3), batch(3, 4)];
        let text = |format| {
            let mut out = Vec::new();
            print_batches(&batches, &options(format, MaxRows::Limit(1)), &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(Format::Csv), "n,name\n1,x\n2,xx\n3,xxx\n");
        assert_eq!(text(Format::Tsv), "n\tname\n1\tx\n2\txx\n3\txxx\n");
        assert_eq!(
            text(Format::NdJson),
            "{\"n\":1,\"name\":\"x\"}\n{\"n\":2,\"name\":\"xx\"}\n{\"n\":3,\"name\":\"xxx\"}\n"
        );
        assert_eq!(
            text(Format::Json),
            "[{\"n\":1,\"name\":\"x\"},{\"n\":2,\"name\":\"xx\"},{\"n\":3,\"name\":\"xxx\"}]\n"
        );
    }
}
