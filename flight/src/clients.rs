//! Which session a request belongs to, and what a client has open.
//!
//! A session token is 122 random bits (a v4 UUID) sent to the client in the
//! `authorization` response header of its first call that can carry one;
//! ADBC's driver echoes it from then on. Prepared statements and tickets
//! are kept under their own random ids and hold their session, so a client
//! that does not echo the token still gets consistent results for each
//! statement (a new session per statement). A prepared statement's handle
//! carries its text, so a statement whose session has ended is prepared
//! again in the session that uses it.
//!
//! A session idle for longer than its limit (a day unless configured) ends (with its prepared statements) when the
//! next client arrives: a notebook that crashed never sends CloseSession,
//! and a server runs for months.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use nuthatch_udf::{Engine, Session};
use tonic::metadata::MetadataMap;
use tonic::Status;

/// How long a session lives without a request, unless configured.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(24 * 3600);

/// One client's session.
pub struct Client {
    pub session: Session,
    pub last_used: Mutex<Instant>,
    /// A short name for logs; not the token, which is a secret.
    pub id: String,
}

impl Client {
    fn touch(&self) {
        *self.last_used.lock().expect("client poisoned") = Instant::now();
    }

    fn idle(&self) -> Duration {
        self.last_used.lock().expect("client poisoned").elapsed()
    }
}

/// Bytes of a prepared statement's handle before its text.
pub const HANDLE_ID_LEN: usize = 16;

/// What a prepared statement is, decided when it is prepared.
pub enum Planned {
    /// A query, planned once.
    Query(LogicalPlan),
    /// DDL, `SET`, `CREATE CACHED FUNCTION`: run at each execution.
    Command(String),
    /// A statement with placeholders, parsed once and planned at each
    /// execution with the values bound to it (see [`crate::params`]).
    Bound(datafusion::sql::parser::Statement),
}

pub struct Prepared {
    pub client: Arc<Client>,
    pub planned: Planned,
    /// The parameter values the client last sent, one row per execution.
    pub parameters: Mutex<Option<RecordBatch>>,
}

impl Prepared {
    pub fn new(client: Arc<Client>, planned: Planned) -> Prepared {
        Prepared {
            client,
            planned,
            parameters: Mutex::new(None),
        }
    }

    pub fn parameters(&self) -> Option<RecordBatch> {
        self.parameters.lock().expect("parameters poisoned").clone()
    }
}

/// A result waiting for its DoGet.
pub struct Pending {
    pub client: Arc<Client>,
    pub plan: Arc<dyn ExecutionPlan>,
    pub created: Instant,
}

pub struct Clients {
    token: Option<String>,
    idle: Duration,
    sessions: Mutex<HashMap<String, Arc<Client>>>,
    prepared: Mutex<HashMap<Vec<u8>, Arc<Prepared>>>,
    pending: Mutex<HashMap<Vec<u8>, Pending>>,
}

/// The session of a request, and the token to send back when it is new.
pub struct Found {
    pub client: Arc<Client>,
    pub new_token: Option<String>,
}

impl Clients {
    pub fn new(token: Option<String>, idle: Duration) -> Clients {
        Clients {
            token,
            idle,
            sessions: Mutex::default(),
            prepared: Mutex::default(),
            pending: Mutex::default(),
        }
    }

    /// The session `metadata` names, or a new one when the client has
    /// none yet (and, with a server token, presents it).
    pub fn session(&self, engine: &Engine, metadata: &MetadataMap) -> Result<Found, Status> {
        let presented = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        if let Some(presented) = presented {
            let sessions = self.sessions.lock().expect("sessions poisoned");
            if let Some(client) = sessions.get(presented) {
                client.touch();
                return Ok(Found {
                    client: Arc::clone(client),
                    new_token: None,
                });
            }
        }
        if let Some(expected) = &self.token {
            let allowed = presented.is_some_and(|p| same_secret(p.as_bytes(), expected.as_bytes()));
            if !allowed {
                return Err(Status::unauthenticated(
                    "this server needs a token: connect with the db_kwargs \
                     {\"adbc.flight.sql.authorization_header\": \"Bearer <token>\"} \
                     (or the connection was idle too long: reconnect)",
                ));
            }
        }
        self.end_idle();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let client = Arc::new(Client {
            session: engine.session(),
            last_used: Mutex::new(Instant::now()),
            id: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
        });
        self.sessions
            .lock()
            .expect("sessions poisoned")
            .insert(token.clone(), Arc::clone(&client));
        tracing::info!(session = %client.id, sessions = self.count(), "new client session");
        Ok(Found {
            client,
            new_token: Some(token),
        })
    }

    pub fn count(&self) -> usize {
        self.sessions.lock().expect("sessions poisoned").len()
    }

    /// Ends the session `metadata` names (CloseSession), with its
    /// prepared statements.
    pub fn close(&self, metadata: &MetadataMap) {
        let presented = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = presented else { return };
        let ended = self
            .sessions
            .lock()
            .expect("sessions poisoned")
            .remove(token.trim());
        if let Some(ended) = ended {
            self.prepared
                .lock()
                .expect("prepared poisoned")
                .retain(|_, p| !Arc::ptr_eq(&p.client, &ended));
            tracing::info!(sessions = self.count(), "client session closed");
        }
    }

    /// Ends the sessions (and their prepared statements) idle for longer
    /// than the limit: when a client arrives, and on the server's timer.
    pub fn end_idle(&self) {
        let live = |client: &Client| client.idle() < self.idle;
        let ended = {
            let mut sessions = self.sessions.lock().expect("sessions poisoned");
            let before = sessions.len();
            sessions.retain(|_, c| live(c));
            before - sessions.len()
        };
        if ended > 0 {
            self.prepared
                .lock()
                .expect("prepared poisoned")
                .retain(|_, p| live(&p.client));
            tracing::info!(ended, idle = ?self.idle, "ended idle client sessions");
        }
    }

    /// Keeps `prepared` under a new handle: a random id followed by the
    /// statement's text, so that a handle outliving its session (ended
    /// idle, or a restarted server) can be prepared again from itself.
    pub fn prepare(&self, prepared: Prepared, sql: &str) -> Vec<u8> {
        let mut handle = uuid::Uuid::new_v4().as_bytes().to_vec();
        debug_assert_eq!(handle.len(), HANDLE_ID_LEN);
        handle.extend_from_slice(sql.as_bytes());
        self.keep(handle.clone(), prepared);
        handle
    }

    /// Keeps `prepared` under `handle`.
    pub fn keep(&self, handle: Vec<u8>, prepared: Prepared) -> Arc<Prepared> {
        let prepared = Arc::new(prepared);
        self.prepared
            .lock()
            .expect("prepared poisoned")
            .insert(handle, Arc::clone(&prepared));
        prepared
    }

    /// The statement prepared under `handle`, if it is still kept.
    pub fn prepared(&self, handle: &[u8]) -> Option<Arc<Prepared>> {
        let prepared = self
            .prepared
            .lock()
            .expect("prepared poisoned")
            .get(handle)
            .cloned()?;
        prepared.client.touch();
        Some(prepared)
    }

    /// Closing what is not open is not an error: ADBC closes before it
    /// prepares the next statement, and fails that one if closing fails.
    pub fn unprepare(&self, handle: &[u8]) {
        self.prepared
            .lock()
            .expect("prepared poisoned")
            .remove(handle);
    }

    pub fn park(&self, pending: Pending) -> Vec<u8> {
        let ticket = uuid::Uuid::new_v4().as_bytes().to_vec();
        let mut parked = self.pending.lock().expect("pending poisoned");
        // Results never fetched are dropped after an hour.
        parked.retain(|_, p| p.created.elapsed().as_secs() < 3600);
        parked.insert(ticket.clone(), pending);
        ticket
    }

    pub fn take(&self, ticket: &[u8]) -> Result<Pending, Status> {
        self.pending
            .lock()
            .expect("pending poisoned")
            .remove(ticket)
            .ok_or_else(|| {
                Status::not_found(
                    "this result was already fetched or has expired; execute the statement again",
                )
            })
    }
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
