//! Cached results as Polars frames.
//!
//! [`Polars`] runs SQL in a nuthatch session (so cached calls resolve,
//! compute and report as usual) and hands the result to Polars:
//!
//! - [`Polars::frame`] executes the query in DataFusion and moves the
//!   batches into a `DataFrame` without copying numeric columns.
//! - [`Polars::lazy`] plans the query now and executes it only when Polars
//!   collects. The `LazyFrame` is a Polars scan over the query: the columns
//!   Polars needs and the filters it pushes to its scan become a projection
//!   and a `WHERE` on the query, so they reach the cached call and its
//!   entry (a time window prunes row groups, a filter is sent to a
//!   database). Polars applies its whole predicate again to what arrives,
//!   so a filter this side cannot express is still applied, by Polars.
//!
//! Polars scans are synchronous; the query runs on the tokio runtime that
//! was current when the frame was made (the session's stores and database
//! pools belong to it).

use std::any::Any;
use std::sync::{Arc, Mutex, Weak};

use arrow::datatypes::SchemaRef as ArrowSchemaRef;
use datafusion::common::{Column as DfColumn, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{col, lit, Expr as DfExpr};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use polars::prelude::{
    AnonymousScan, AnonymousScanArgs, AnyValue, DataFrame, Expr, IntoLazy, LazyFrame, LiteralValue,
    Operator, PolarsError, PolarsResult, ScanArgsAnonymous, SchemaRef, TimeUnit,
};
use tokio::runtime::{Handle, RuntimeFlavor};

use nuthatch_udf::session::FunctionSync;

use crate::convert::{polars_error, to_polars};
use crate::sql::PolarsSql;

/// Polars over a nuthatch session: see the module doc.
#[derive(Clone)]
pub struct Polars {
    ctx: SessionContext,
    /// The lazy scans handed out and still alive: Polars' streaming engine
    /// cannot run them (0.55), so a body's plan gets them fetched first
    /// (see [`crate::streaming`]).
    scans: Arc<Mutex<Vec<Weak<QueryScan>>>>,
    /// For a session's handle: registers the functions the engine gained
    /// since, before each query, so a handle kept across registrations
    /// calls them.
    functions: Option<FunctionSync>,
}

impl std::fmt::Debug for Polars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Polars")
    }
}

impl Polars {
    /// Polars over this DataFusion context (a nuthatch session's, or the
    /// one a compute body is given).
    pub fn new(ctx: SessionContext) -> Polars {
        Polars {
            ctx,
            scans: Arc::default(),
            functions: None,
        }
    }

    /// Polars over a session's context, kept in step with its engine's
    /// functions by `functions`.
    pub fn of_session(ctx: SessionContext, functions: FunctionSync) -> Polars {
        Polars {
            functions: Some(functions),
            ..Polars::new(ctx)
        }
    }

    /// Makes the engine's functions registered since callable.
    pub(crate) fn refresh(&self) {
        if let Some(functions) = &self.functions {
            functions.refresh();
        }
    }

    /// The DataFusion context queries run in.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs `sql` and returns its whole result as a Polars frame.
    pub async fn frame(&self, sql: &str) -> Result<DataFrame> {
        self.refresh();
        let frame = self.ctx.sql(sql).await?;
        let schema: ArrowSchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await?;
        to_polars(&schema, &batches)
    }

    /// Plans `sql` and returns a `LazyFrame` that runs it when collected,
    /// with Polars' projection, filters and row limit pushed into it.
    ///
    /// Collect it with `collect()` (Polars' in-memory engine): Polars 0.55's
    /// streaming engine does not run scans defined outside Polars.
    pub async fn lazy(&self, sql: &str) -> Result<LazyFrame> {
        self.refresh();
        let frame = self.ctx.sql(sql).await?;
        let arrow: ArrowSchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let schema = Arc::clone(to_polars(&arrow, &[])?.schema());
        let scan = Arc::new(QueryScan {
            ctx: self.ctx.clone(),
            sql: sql.to_string(),
            schema: Arc::clone(&schema),
            runtime: Handle::current(),
        });
        {
            let mut scans = self.scans.lock().unwrap_or_else(|e| e.into_inner());
            // A session's handle lives long: forget the scans whose frames
            // are gone.
            scans.retain(|scan| scan.strong_count() > 0);
            scans.push(Arc::downgrade(&scan));
        }
        let args = ScanArgsAnonymous {
            schema: Some(schema),
            name: "NUTHATCH SCAN",
            ..Default::default()
        };
        LazyFrame::anonymous_scan(scan, args).map_err(polars_error)
    }

    /// A Polars SQL context in which this session's cached functions can be
    /// called as table functions.
    pub fn sql_context(&self) -> PolarsSql {
        PolarsSql::new(self.clone())
    }

    /// The lazy scans this handle made that are still in use.
    pub(crate) fn scans(&self) -> Vec<Arc<QueryScan>> {
        let scans = self.scans.lock().unwrap_or_else(|e| e.into_inner());
        scans.iter().filter_map(Weak::upgrade).collect()
    }
}

/// A query, scanned by Polars.
pub(crate) struct QueryScan {
    ctx: SessionContext,
    sql: String,
    schema: SchemaRef,
    runtime: Handle,
}

impl AnonymousScan for QueryScan {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self, _infer_schema_length: Option<usize>) -> PolarsResult<SchemaRef> {
        Ok(Arc::clone(&self.schema))
    }

    fn allows_predicate_pushdown(&self) -> bool {
        true
    }

    fn allows_projection_pushdown(&self) -> bool {
        true
    }

    fn scan(&self, args: AnonymousScanArgs) -> PolarsResult<DataFrame> {
        let predicate = args.predicate.clone();
        let fetched = self.block_on(self.fetch(&args))?;
        // Polars does not filter what a scan that takes predicates returns:
        // apply the whole predicate, including what was pushed, since a
        // pushed filter may be looser than Polars' (NULL and NaN rules).
        let Some(predicate) = predicate else {
            return Ok(fetched);
        };
        let mut frame = fetched.lazy().filter(predicate);
        if let Some(n) = args.n_rows {
            frame = frame.limit(n as u32);
        }
        frame.collect()
    }
}

impl QueryScan {
    /// Runs the query with what Polars pushed, as a Polars frame.
    async fn fetch(&self, args: &AnonymousScanArgs) -> Result<DataFrame> {
        let mut frame = self.ctx.sql(&self.sql).await?;
        let mut exact = true;
        if let Some(predicate) = &args.predicate {
            for conjunct in conjuncts(predicate) {
                match translate(conjunct) {
                    Some(filter) => frame = frame.filter(filter)?,
                    None => exact = false,
                }
            }
        }
        if let Some(columns) = &args.with_columns {
            let columns = columns
                .iter()
                .map(|name| col(DfColumn::new_unqualified(name.as_str())));
            frame = frame.select(columns)?;
        }
        // A limit is only right before Polars' own filter if that filter
        // cannot drop any more rows.
        if let (Some(n), true) = (args.n_rows, exact || args.predicate.is_none()) {
            frame = frame.limit(0, Some(n))?;
        }
        let schema: ArrowSchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches: Vec<_> = frame.execute_stream().await?.try_collect().await?;
        to_polars(&schema, &batches)
    }

    fn block_on<T>(&self, work: impl std::future::Future<Output = Result<T>>) -> PolarsResult<T> {
        let outcome = match Handle::try_current() {
            Err(_) => self.runtime.block_on(work),
            Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.runtime.block_on(work))
            }
            Ok(_) => Err(DataFusionError::Execution(
                "a nuthatch LazyFrame was collected on a single-threaded tokio runtime, which \
                 the query it runs would need: collect it in tokio::task::spawn_blocking"
                    .into(),
            )),
        };
        outcome.map_err(|e| PolarsError::ComputeError(e.to_string().into()))
    }
}

/// The predicate's top-level AND operands.
fn conjuncts(predicate: &Expr) -> Vec<&Expr> {
    match predicate {
        Expr::BinaryExpr {
            left,
            op: Operator::And | Operator::LogicalAnd,
            right,
        } => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        other => vec![other],
    }
}

/// A Polars filter as a DataFusion one, when it is made of column
/// comparisons with literals joined by AND and OR; `None` otherwise.
fn translate(expr: &Expr) -> Option<DfExpr> {
    match expr {
        Expr::Column(name) => Some(col(DfColumn::new_unqualified(name.as_str()))),
        Expr::Literal(value) => literal(value).map(lit),
        Expr::Alias(inner, _) => translate(inner),
        Expr::BinaryExpr { left, op, right } => {
            let (left, right) = (translate(left)?, translate(right)?);
            Some(match op {
                Operator::Eq => left.eq(right),
                Operator::NotEq => left.not_eq(right),
                Operator::Lt => left.lt(right),
                Operator::LtEq => left.lt_eq(right),
                Operator::Gt => left.gt(right),
                Operator::GtEq => left.gt_eq(right),
                Operator::And | Operator::LogicalAnd => left.and(right),
                Operator::Or | Operator::LogicalOr => left.or(right),
                _ => return None,
            })
        }
        _ => None,
    }
}

fn literal(value: &LiteralValue) -> Option<ScalarValue> {
    match value {
        LiteralValue::Scalar(scalar) => any_value(scalar.value()),
        // Literals Polars has not typed yet (its optimizer usually has by
        // the time a predicate reaches a scan).
        LiteralValue::Dyn(_) => match (value.extract_i64(), value.extract_str()) {
            (Ok(i), _) => Some(ScalarValue::from(i)),
            (_, Some(s)) => Some(ScalarValue::from(s)),
            _ => None,
        },
        _ => None,
    }
}

fn any_value(value: &AnyValue) -> Option<ScalarValue> {
    Some(match value {
        AnyValue::Boolean(v) => ScalarValue::from(*v),
        AnyValue::Int8(v) => ScalarValue::from(*v),
        AnyValue::Int16(v) => ScalarValue::from(*v),
        AnyValue::Int32(v) => ScalarValue::from(*v),
        AnyValue::Int64(v) => ScalarValue::from(*v),
        AnyValue::UInt8(v) => ScalarValue::from(*v),
        AnyValue::UInt16(v) => ScalarValue::from(*v),
        AnyValue::UInt32(v) => ScalarValue::from(*v),
        AnyValue::UInt64(v) => ScalarValue::from(*v),
        AnyValue::Float32(v) => ScalarValue::from(*v),
        AnyValue::Float64(v) => ScalarValue::from(*v),
        AnyValue::String(v) => ScalarValue::from(*v),
        AnyValue::StringOwned(v) => ScalarValue::from(v.as_str()),
        AnyValue::Date(days) => ScalarValue::Date32(Some(*days)),
        AnyValue::Datetime(v, unit, zone) => timestamp(*v, *unit, zone.map(|z| z.as_str())),
        AnyValue::DatetimeOwned(v, unit, zone) => {
            timestamp(*v, *unit, zone.as_ref().map(|z| z.as_str()))
        }
        _ => return None,
    })
}

fn timestamp(value: i64, unit: TimeUnit, zone: Option<&str>) -> ScalarValue {
    let zone: Option<Arc<str>> = zone.map(Arc::from);
    match unit {
        TimeUnit::Nanoseconds => ScalarValue::TimestampNanosecond(Some(value), zone),
        TimeUnit::Microseconds => ScalarValue::TimestampMicrosecond(Some(value), zone),
        TimeUnit::Milliseconds => ScalarValue::TimestampMillisecond(Some(value), zone),
    }
}
