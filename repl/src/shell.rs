//! Running text: SQL statements and backslash commands, from `-c`, `-f`,
//! rc files, `\i` and the prompt alike.
//!
//! A [`Shell`] owns the print settings the commands change and, at the
//! prompt, the [`Terminal`]: while a statement runs it redraws the progress
//! line, answers overwrite questions from the engine, and cancels the
//! statement on Ctrl-C. Batch runs have no terminal: no progress, no
//! questions (a write that would need one fails and says which mode
//! overwrites), and Ctrl-C ends the process as usual.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrame;
use datafusion::error::{DataFusionError, Result};
use futures::StreamExt;
use nuthatch::Session;
use tokio::sync::{mpsc, oneshot};

use crate::commands::{self, Flow};
use crate::helper::{statement_complete, PromptEditor};
use crate::print::{Pager, PrintOptions, Printed, Printer};
use crate::progress::{self, ProgressLine};

/// What a statement cancelled with Ctrl-C ends with.
pub const CANCELLED: &str = "Cancelled (Ctrl-C); calls that had not finished stored nothing.";

/// Runs `work` (planning a statement, resolving its calls, a command's
/// listing) so that, at the prompt, Ctrl-C abandons it: the future is
/// dropped, the session's writes are cancelled, and the prompt comes back.
async fn interruptible<T>(
    interactive: bool,
    session: &Session,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    if !interactive {
        return work.await;
    }
    tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => {
            session.cancel_writes();
            Err(DataFusionError::Execution(CANCELLED.into()))
        }
        done = work => done,
    }
}

/// The text to print for an error: a cancel as it is, anything else as
/// `Error: ...` with the fix.
pub fn error_text(error: &DataFusionError) -> String {
    if matches!(error, DataFusionError::Execution(text) if text == CANCELLED) {
        return CANCELLED.to_string();
    }
    format!("Error: {}", nuthatch::error_message(error))
}

/// What the engine asks the person at the prompt.
pub struct Question {
    pub text: String,
    pub reply: oneshot::Sender<bool>,
}

/// The engine's way to the person at the prompt.
#[derive(Debug)]
pub struct TerminalPrompt(pub mpsc::UnboundedSender<Question>);

#[async_trait::async_trait]
impl nuthatch::OverwritePrompt for TerminalPrompt {
    async fn confirm_overwrite(&self, function: &str, key: &str, tier: &str) -> bool {
        let (reply, answer) = oneshot::channel();
        let text = format!(
            "{function}: entry {key} is already stored on the {tier} tier. Replace it with the \
             recomputed result?"
        );
        if self.0.send(Question { text, reply }).is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

/// The interactive side of a shell.
pub struct Terminal {
    pub editor: PromptEditor,
    /// stdout and stderr are both terminals.
    pub shows_progress: bool,
}

/// The next question, or never when nothing can ask.
async fn next_question(
    questions: &mut Option<mpsc::UnboundedReceiver<Question>>,
) -> Option<Question> {
    match questions {
        Some(questions) => questions.recv().await,
        None => std::future::pending().await,
    }
}

impl Terminal {
    /// Asks `text` (y/n) at the prompt; anything but y/yes is no.
    fn ask(&mut self, text: &str) -> bool {
        if let Some(helper) = self.editor.helper_mut() {
            helper.asking = true;
        }
        let answer =
            tokio::task::block_in_place(|| self.editor.readline(&format!("{text} (y/n) ")));
        if let Some(helper) = self.editor.helper_mut() {
            helper.asking = false;
        }
        matches!(answer, Ok(a) if matches!(a.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
    }
}

pub struct Shell<'a> {
    pub session: &'a Session,
    pub options: PrintOptions,
    pub terminal: Option<Terminal>,
    /// The engine's questions for the person at the terminal.
    pub questions: Option<mpsc::UnboundedReceiver<Question>>,
}

impl<'a> Shell<'a> {
    pub fn new(session: &'a Session, options: PrintOptions) -> Shell<'a> {
        Shell {
            session,
            options,
            terminal: None,
            questions: None,
        }
    }

    /// Runs `text`: statements, and commands on lines of their own between
    /// statements. Stops at the first error, or at `\q`.
    pub async fn run_text(&mut self, text: &str) -> Result<Flow> {
        let mut sql = String::new();
        for line in text.lines() {
            if line.trim_start().starts_with('\\') && statement_complete(&sql) {
                self.run_sql(&std::mem::take(&mut sql)).await?;
                if self.run_command(line.trim()).await? == Flow::Quit {
                    return Ok(Flow::Quit);
                }
            } else {
                sql.push_str(line);
                sql.push('\n');
            }
        }
        self.run_sql(&sql).await?;
        Ok(Flow::Continue)
    }

    async fn run_command(&mut self, line: &str) -> Result<Flow> {
        let command = commands::Command::parse(line)?;
        let (interactive, session) = (self.terminal.is_some(), self.session);
        interruptible(interactive, session, commands::run(self, command)).await
    }

    /// Runs every statement of `sql` in order.
    pub async fn run_sql(&mut self, sql: &str) -> Result<()> {
        for statement in nuthatch::split_statements(sql)? {
            let started = Instant::now();
            let interactive = self.terminal.is_some();
            let planned = interruptible(interactive, self.session, self.session.sql(&statement));
            let ran = match planned.await {
                Ok(frame) => self.print_frame(frame, started).await,
                Err(e) => Err(e),
            };
            if ran.is_err() {
                // Reports of calls that did finish belong to the failed
                // statement, not to the next one.
                self.session.take_reports();
            }
            ran?;
        }
        Ok(())
    }

    /// Executes `frame` and prints its rows as they come, then the calls'
    /// reports and the footer.
    pub async fn print_frame(&mut self, frame: DataFrame, started: Instant) -> Result<()> {
        let interactive = self.terminal.is_some();
        // Making the physical plan resolves the cached calls, which may
        // compute and store an entry before the first row.
        let mut stream = interruptible(interactive, self.session, frame.execute_stream()).await?;
        let mut output = Output::new(self.options.clone(), stream.schema());
        let mut line = ProgressLine::default();
        let mut tick = tokio::time::interval(progress::TICK);
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            // A pager owns the screen once it shows rows.
            let shows_progress =
                self.terminal.as_ref().is_some_and(|t| t.shows_progress) && !output.paging();
            tokio::select! {
                biased;
                _ = &mut ctrl_c, if interactive => {
                    line.clear();
                    drop(stream);
                    self.session.cancel_writes();
                    output.abandon();
                    return Err(DataFusionError::Execution(CANCELLED.into()));
                }
                Some(question) = next_question(&mut self.questions) => {
                    line.clear();
                    let yes = self.terminal.as_mut().is_some_and(|t| t.ask(&question.text));
                    let _ = question.reply.send(yes);
                }
                next = stream.next() => match next {
                    Some(Ok(batch)) => {
                        line.clear();
                        if !output.batch(&batch)? {
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        line.clear();
                        output.abandon();
                        return Err(e);
                    }
                    None => break,
                },
                _ = tick.tick(), if shows_progress => {
                    line.draw(&self.session.running(), started);
                }
            }
        }
        line.clear();
        let printed = output.finish()?;
        self.notes(printed, started)
    }

    /// The call reports and the footer, unless quiet.
    fn notes(&self, printed: Printed, started: Instant) -> Result<()> {
        let reports = self.session.take_reports();
        if self.options.quiet {
            return Ok(());
        }
        let mut out: Box<dyn Write> = if self.options.notes_with_data() {
            Box::new(std::io::stdout().lock())
        } else {
            Box::new(std::io::stderr().lock())
        };
        if printed.shown < printed.rows {
            writeln!(
                out,
                "Showing {} of {} rows (--maxrows {}).",
                printed.shown, printed.rows, self.options.maxrows
            )?;
        }
        for report in reports {
            writeln!(out, "nuthatch: {report}")?;
        }
        let mut footer = format!("{} row(s) fetched.", printed.rows);
        if self.options.timing {
            footer.push_str(&format!(
                " Elapsed {:.3} seconds.",
                started.elapsed().as_secs_f64()
            ));
        }
        writeln!(out, "{footer}\n")?;
        out.flush()?;
        Ok(())
    }
}

/// Where one result goes. It is opened at the first batch, so that a pager
/// does not take the terminal while the engine may still ask a question
/// (questions come before a call computes).
struct Output {
    options: PrintOptions,
    schema: SchemaRef,
    printer: Option<Printer<Box<dyn Write + Send>>>,
    pager: Option<Pager>,
}

impl Output {
    fn new(options: PrintOptions, schema: SchemaRef) -> Output {
        Output {
            options,
            schema,
            printer: None,
            pager: None,
        }
    }

    fn paging(&self) -> bool {
        self.pager.is_some()
    }

    fn printer(&mut self) -> Result<&mut Printer<Box<dyn Write + Send>>> {
        if self.printer.is_none() {
            let sink: Box<dyn Write + Send> = match &self.options.pager {
                Some(command)
                    if std::io::stdout().is_terminal() && !self.schema.fields().is_empty() =>
                {
                    let (pager, stdin) = Pager::start(command)?;
                    self.pager = Some(pager);
                    Box::new(stdin)
                }
                _ => Box::new(std::io::stdout()),
            };
            self.printer = Some(Printer::new(&self.options, &self.schema, sink));
        }
        Ok(self.printer.as_mut().expect("just opened"))
    }

    /// Prints `batch`; `false` once the person has closed the pager, when
    /// the rest of the result is not wanted.
    fn batch(&mut self, batch: &RecordBatch) -> Result<bool> {
        if self.pager.as_mut().is_some_and(Pager::quit) {
            return Ok(false);
        }
        match self.printer()?.batch(batch) {
            Ok(()) => Ok(true),
            // Writing into a pager that was closed meanwhile.
            Err(_) if self.pager.is_some() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Ends the result and waits for the pager to be closed.
    fn finish(mut self) -> Result<Printed> {
        // A result without batches still prints (an empty table's header).
        self.printer()?;
        let printer = self.printer.take().expect("opened above");
        let printed = match printer.finish() {
            Ok((printed, out)) => {
                drop(out);
                printed
            }
            Err(_) if self.pager.is_some() => Printed::default(),
            Err(e) => return Err(e),
        };
        if let Some(pager) = self.pager.take() {
            pager.wait();
        }
        Ok(printed)
    }

    /// Drops the result midway.
    fn abandon(mut self) {
        self.printer = None;
        if let Some(pager) = self.pager.take() {
            pager.wait();
        }
    }
}
