//! The Flight SQL service: statements, prepared statements, metadata.
//!
//! An execution (GetFlightInfo of a statement or a prepared statement)
//! makes the physical plan once and parks it under a random ticket; the
//! DoGet that follows runs exactly that plan. The schema in the FlightInfo
//! is the one the encoder will send (it casts every batch to it), so the
//! client never sees "inconsistent schema". A text of several statements
//! (a definitions file) runs them in order and answers with the last.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementQuery, DoPutPreparedStatementResult,
    ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::execute_stream;
use futures::{Stream, StreamExt, TryStreamExt};
use nuthatch_udf::definition::CreateCachedFunction;
use nuthatch_udf::{params, split_statements, Engine};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::clients::{Client, Clients, Found, Pending, Planned, Prepared, HANDLE_ID_LEN};
use crate::metadata;
use crate::status::{arrow_status, to_status};

type DoGetStream = <FlightSqlServer as FlightService>::DoGetStream;

/// The service over one engine, shared by every client.
#[derive(Clone)]
pub struct FlightSqlServer {
    engine: Engine,
    clients: Arc<Clients>,
}

impl FlightSqlServer {
    /// With a token in `options`, clients must present it before they get
    /// a session.
    pub fn new(engine: Engine, options: &crate::ServeOptions) -> FlightSqlServer {
        let idle = options.session_idle.unwrap_or(crate::clients::DEFAULT_IDLE);
        let clients = Arc::new(Clients::new(options.token.clone(), idle));
        sweep_idle(Arc::downgrade(&clients), idle);
        FlightSqlServer { engine, clients }
    }

    fn client<T>(&self, request: &Request<T>) -> Result<Found, Status> {
        self.clients.session(&self.engine, request.metadata())
    }

    /// The FlightInfo of a metadata command whose answer has `schema`: its
    /// ticket is the command itself.
    fn metadata_info(
        &self,
        schema: &Schema,
        command: impl ProstMessageExt,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let found = self.client(&request)?;
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(command.as_any().encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(arrow_status)?
            .with_endpoint(endpoint)
            .with_descriptor(request.into_inner());
        Ok(respond(&found, info))
    }

    /// Plans `sql` as a query, or recognises it as a command to run when
    /// executed.
    async fn plan(client: &Client, sql: &str) -> Result<Planned, Status> {
        client.session.refresh_functions();
        // A script (a definitions file sent whole) runs statement by
        // statement when executed; its result is the last one's.
        if split_statements(sql).map_err(to_status)?.len() > 1 {
            return Ok(Planned::Command(sql.to_string()));
        }
        if CreateCachedFunction::parse(sql)
            .map_err(to_status)?
            .is_some()
        {
            return Ok(Planned::Command(sql.to_string()));
        }
        let state = client.session.context().state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect).map_err(to_status)?;
        if !params::placeholders(&statement).is_empty() {
            return Ok(Planned::Bound(statement));
        }
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(to_status)?;
        Ok(match plan {
            LogicalPlan::Ddl(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_) => Planned::Command(sql.to_string()),
            plan => Planned::Query(plan),
        })
    }

    /// Prepares again, in `found`'s session, a statement whose session has
    /// ended: the DB-API keeps a cursor's statement for as long as its text
    /// does not change, across a day idle or a server restart.
    async fn prepare_again(&self, found: &Found, handle: Vec<u8>) -> Result<Arc<Prepared>, Status> {
        let sql = handle
            .get(HANDLE_ID_LEN..)
            .filter(|sql| !sql.is_empty())
            .and_then(|sql| std::str::from_utf8(sql).ok())
            .ok_or_else(|| {
                Status::not_found("this prepared statement was closed; prepare it again")
            })?;
        tracing::debug!("preparing again a statement whose session ended");
        let planned = Self::plan(&found.client, sql).await?;
        let prepared = Prepared::new(Arc::clone(&found.client), planned);
        Ok(self.clients.keep(handle, prepared))
    }

    /// Runs what is planned (a command now; a query's physical plan) and
    /// parks the result under a ticket.
    async fn execute(
        &self,
        client: Arc<Client>,
        planned: &Planned,
        parameters: Option<RecordBatch>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        // Reports of earlier statements are in the session's history
        // (nuthatch.calls); the unread list must not grow for ever.
        client.session.take_reports();
        let session = &client.session;
        let frame = match planned {
            Planned::Command(sql) => {
                let mut statements = split_statements(sql).map_err(to_status)?;
                let last = statements.pop().unwrap_or_default();
                for statement in statements {
                    let frame = session.sql(&statement).await.map_err(to_status)?;
                    frame.collect().await.map_err(to_status)?;
                }
                session.sql(&last).await.map_err(to_status)?
            }
            Planned::Query(plan) => DataFrame::new(session.context().state(), plan.clone()),
            Planned::Bound(statement) => {
                Self::run_bound(&client, statement, parameters.as_ref()).await?
            }
        };
        let plan = frame.create_physical_plan().await.map_err(to_status)?;
        let announced = announced_schema(plan.schema());
        let ticket = self.clients.park(Pending {
            client,
            plan,
            created: std::time::Instant::now(),
        });
        flight_info(&announced, ticket, descriptor)
    }
}

impl FlightSqlServer {
    /// Keeps the parameter values a client sends (a DoPut) with the
    /// prepared statement `handle`, for its executions.
    async fn bind(
        &self,
        handle: &[u8],
        request: Request<PeekableFlightDataStream>,
    ) -> Result<Arc<Prepared>, Status> {
        let found = self.client(&request)?;
        let prepared = match self.clients.prepared(handle) {
            Some(prepared) => prepared,
            None => self.prepare_again(&found, handle.to_vec()).await?,
        };
        let data = request
            .into_inner()
            .map_err(|status| FlightError::Tonic(Box::new(status)));
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(data)
            .try_collect()
            .await
            .map_err(Status::from)?;
        let parameters = match batches.first() {
            Some(first) => Some(
                arrow::compute::concat_batches(&first.schema(), &batches).map_err(arrow_status)?,
            ),
            None => None,
        };
        *prepared.parameters.lock().expect("parameters poisoned") = parameters;
        Ok(prepared)
    }

    /// Plans `statement` once per row of `parameters`, with that row's
    /// values bound: commands run in turn (the last one answers), queries
    /// answer with their rows one after another.
    async fn run_bound(
        client: &Client,
        statement: &datafusion::sql::parser::Statement,
        parameters: Option<&RecordBatch>,
    ) -> Result<DataFrame, Status> {
        let wanted = params::placeholders(statement).len();
        let Some(parameters) = parameters.filter(|p| p.num_rows() > 0) else {
            return Err(Status::invalid_argument(format!(
                "the statement has {wanted} placeholder(s) and no values were bound: pass them \
                 with the statement (cur.execute(sql, (start, end, 7)))"
            )));
        };
        let state = client.session.context().state();
        let mut answer: Option<LogicalPlan> = None;
        for row in 0..parameters.num_rows() {
            let values = params::row(parameters.columns(), row).map_err(to_status)?;
            let bound = params::bind(statement, &values).map_err(to_status)?;
            let plan = state.statement_to_plan(bound).await.map_err(to_status)?;
            answer = Some(match (answer, plan) {
                (
                    _,
                    command @ (LogicalPlan::Ddl(_)
                    | LogicalPlan::Dml(_)
                    | LogicalPlan::Statement(_)),
                ) => {
                    let frame = client.session.context().execute_logical_plan(command).await;
                    let frame = frame.map_err(to_status)?;
                    let batches = frame.collect().await.map_err(to_status)?;
                    let table = datafusion::datasource::MemTable::try_new(
                        batches
                            .first()
                            .map_or_else(|| Arc::new(Schema::empty()), |b| b.schema()),
                        vec![batches],
                    )
                    .map_err(to_status)?;
                    let frame = client.session.context().read_table(Arc::new(table));
                    frame.map_err(to_status)?.into_unoptimized_plan()
                }
                (None, query) => query,
                (Some(earlier), query) => LogicalPlanBuilder::from(earlier)
                    .union(query)
                    .and_then(|b| b.build())
                    .map_err(to_status)?,
            });
        }
        let plan = answer.expect("at least one row");
        Ok(DataFrame::new(state, plan))
    }
}

/// Ends idle sessions on a timer (a quarter of the limit, between a second
/// and a minute), so a server nobody calls lets go of them too; the timer
/// stops with the server.
fn sweep_idle(clients: std::sync::Weak<Clients>, idle: std::time::Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let every = (idle / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            match clients.upgrade() {
                Some(clients) => clients.end_idle(),
                None => break,
            }
        }
    });
}

/// The schema the encoder sends for results of `schema` (dictionaries
/// hydrated).
fn announced_schema(schema: SchemaRef) -> SchemaRef {
    FlightDataEncoderBuilder::new()
        .with_schema(Arc::clone(&schema))
        .build(futures::stream::empty())
        .known_schema()
        .unwrap_or(schema)
}

fn flight_info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let ticket = TicketStatementQuery {
        statement_handle: ticket.into(),
    };
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(arrow_status)?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor)
        .with_total_records(-1)
        .with_ordered(false))
}

/// `value` as a response, carrying the session token when it is new.
fn respond<T>(found: &Found, value: T) -> Response<T> {
    let mut response = Response::new(value);
    if let Some(token) = &found.new_token {
        if let Ok(header) = format!("Bearer {token}").parse() {
            response.metadata_mut().insert("authorization", header);
        }
    }
    response
}

fn encode(
    schema: SchemaRef,
    batches: impl Stream<Item = datafusion::error::Result<RecordBatch>> + Send + 'static,
) -> DoGetStream {
    let batches = batches.map_err(|e| FlightError::Tonic(Box::new(to_status(e))));
    Box::pin(
        FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from),
    )
}

/// A result stream that says so when it is dropped before its end: the
/// client went away, and the query (a compute too) stops with it, as do
/// the writes of misses it was served while they were stored.
/// It also logs one line per query when the stream ends: the session's
/// short name, rows, time and how it ended (never the statement's values).
struct Watched<S> {
    inner: S,
    batches: usize,
    rows: usize,
    ended: bool,
    failed: bool,
    started: std::time::Instant,
    client: Arc<Client>,
}

impl<S> Watched<S> {
    fn new(inner: S, client: Arc<Client>) -> Self {
        Watched {
            inner,
            batches: 0,
            rows: 0,
            ended: false,
            failed: false,
            started: std::time::Instant::now(),
            client,
        }
    }
}

impl<S> Stream for Watched<S>
where
    S: Stream<Item = datafusion::error::Result<RecordBatch>> + Unpin,
{
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        let next = self.inner.poll_next_unpin(cx);
        match &next {
            std::task::Poll::Ready(Some(Ok(batch))) => {
                self.batches += 1;
                self.rows += batch.num_rows();
            }
            std::task::Poll::Ready(Some(Err(_))) => self.failed = true,
            std::task::Poll::Ready(None) => self.ended = true,
            std::task::Poll::Pending => {}
        }
        next
    }
}

impl<S> Drop for Watched<S> {
    fn drop(&mut self) {
        let outcome = match (self.ended, self.failed) {
            (_, true) => "failed",
            (true, false) => "done",
            (false, false) => "cancelled: the client went away",
        };
        tracing::info!(
            session = %self.client.id,
            rows = self.rows,
            batches = self.batches,
            ms = self.started.elapsed().as_millis() as u64,
            "query {outcome}"
        );
        if !self.ended {
            self.client.session.cancel_writes();
        }
    }
}

/// How many encoded messages may wait for the network.
const AHEAD: usize = 4;

/// Runs `encoded` in a task of its own, up to [`AHEAD`] messages ahead of
/// the client: scanning and encoding the next batches overlaps sending
/// this one (a third faster to the ADBC client on two cores, see the
/// `flight` benchmark). When the client goes away the task stops at once,
/// even in the middle of a compute, and drops the query.
fn ahead(mut encoded: DoGetStream) -> DoGetStream {
    let (sender, receiver) = tokio::sync::mpsc::channel(AHEAD);
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                _ = sender.closed() => break,
                message = encoded.next() => message,
            };
            let Some(message) = message else { break };
            if sender.send(message).await.is_err() {
                break;
            }
        }
    });
    Box::pin(futures::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|message| (message, receiver)) },
    ))
}

fn one_batch(batch: RecordBatch) -> DoGetStream {
    let schema = batch.schema();
    encode(schema, futures::stream::iter([Ok(batch)]))
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServer {
    type FlightService = FlightSqlServer;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let found = self.client(&request)?;
        let planned = Self::plan(&found.client, &query.query).await?;
        let info = self
            .execute(
                Arc::clone(&found.client),
                &planned,
                None,
                request.into_inner(),
            )
            .await?;
        Ok(respond(&found, info))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let found = self.client(&request)?;
        let handle = query.prepared_statement_handle;
        let prepared = match self.clients.prepared(&handle) {
            Some(prepared) => prepared,
            None => self.prepare_again(&found, handle.to_vec()).await?,
        };
        let info = self
            .execute(
                Arc::clone(&prepared.client),
                &prepared.planned,
                prepared.parameters(),
                request.into_inner(),
            )
            .await?;
        Ok(respond(&found, info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let pending = self.clients.take(&ticket.statement_handle)?;
        let task = pending.client.session.context().task_ctx();
        let schema = pending.plan.schema();
        let stream = execute_stream(pending.plan, task).map_err(to_status)?;
        // Dropping the response (the client went away) drops the stream,
        // which cancels the query, its compute included.
        Ok(Response::new(ahead(encode(
            schema,
            Watched::new(stream, Arc::clone(&pending.client)),
        ))))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let found = self.client(&request)?;
        let planned = Self::plan(&found.client, &query.query).await?;
        let schema = match &planned {
            Planned::Query(plan) => announced_schema(Arc::new(plan.schema().as_arrow().clone())),
            // Known once values are bound and the statement planned.
            Planned::Command(_) | Planned::Bound(_) => Arc::new(Schema::empty()),
        };
        let options = IpcWriteOptions::default();
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &options)
            .try_into()
            .map_err(arrow_status)?;
        let handle = self
            .clients
            .prepare(Prepared::new(found.client, planned), &query.query);
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema,
            parameter_schema: Default::default(),
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let handle = query.prepared_statement_handle;
        self.bind(&handle, request).await?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle),
        })
    }

    /// `executemany` of a statement that changes something: each row of
    /// values runs it once. What it changed is not counted (-1).
    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let prepared = self.bind(&query.prepared_statement_handle, request).await?;
        let planned = match &prepared.planned {
            Planned::Bound(statement) => statement,
            _ => {
                return Err(Status::invalid_argument(
                    "this statement has no placeholders to bind values to",
                ))
            }
        };
        let parameters = prepared.parameters();
        let frame = Self::run_bound(&prepared.client, planned, parameters.as_ref()).await?;
        frame.collect().await.map_err(to_status)?;
        Ok(-1)
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        self.clients.unprepare(&query.prepared_statement_handle);
        Ok(())
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        if request.get_ref().r#type == "CloseSession" {
            self.clients.close(request.metadata());
            return Ok(Response::new(Box::pin(futures::stream::empty())));
        }
        Err(Status::invalid_argument(format!(
            "nuthatch does not support the action {:?}",
            request.get_ref().r#type
        )))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(metadata::sql_info()).schema();
        self.metadata_info(&schema, query, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let batch = query
            .into_builder(metadata::sql_info())
            .build()
            .map_err(Status::from)?;
        Ok(Response::new(one_batch(batch)))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.metadata_info(&schema, query, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let found = self.client(&request)?;
        let batch = metadata::catalogs(&found.client.session, query)?;
        Ok(respond(&found, one_batch(batch)))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(&schema, query, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let found = self.client(&request)?;
        let batch = metadata::schemas(&found.client.session, query)?;
        Ok(respond(&found, one_batch(batch)))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(&schema, query, request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let found = self.client(&request)?;
        let batch = metadata::tables(&found.client.session, query).await?;
        Ok(respond(&found, one_batch(batch)))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.metadata_info(&schema, query, request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(Response::new(one_batch(metadata::table_types(query)?)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
