//! Which session a request belongs to, and what a client has open.
//!
//! A session token is 122 random bits (a v4 UUID) sent to the client in the
//! `authorization` response header of its first call that can carry one;
//! ADBC's driver echoes it from then on. Prepared statements and tickets
//! are kept under their own random ids and hold their session, so a client
//! that does not echo the token still gets consistent results for each
//! statement (a new session per statement).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use nuthatch_udf::{Engine, Session};
use tonic::metadata::MetadataMap;
use tonic::Status;

/// One client's session.
pub struct Client {
    pub session: Session,
    pub last_used: Mutex<Instant>,
}

/// What a prepared statement is, decided when it is prepared.
pub enum Planned {
    /// A query, planned once.
    Query(LogicalPlan),
    /// DDL, `SET`, `CREATE CACHED FUNCTION`: run at each execution.
    Command(String),
}

pub struct Prepared {
    pub client: Arc<Client>,
    pub planned: Planned,
}

/// A result waiting for its DoGet.
pub struct Pending {
    pub client: Arc<Client>,
    pub plan: Arc<dyn ExecutionPlan>,
    pub created: Instant,
}

#[derive(Default)]
pub struct Clients {
    token: Option<String>,
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
    pub fn new(token: Option<String>) -> Clients {
        Clients {
            token,
            ..Clients::default()
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
                *client.last_used.lock().expect("client poisoned") = Instant::now();
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
                     {\"adbc.flight.sql.authorization_header\": \"Bearer <token>\"}",
                ));
            }
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let client = Arc::new(Client {
            session: engine.session(),
            last_used: Mutex::new(Instant::now()),
        });
        self.sessions
            .lock()
            .expect("sessions poisoned")
            .insert(token.clone(), Arc::clone(&client));
        tracing::info!(sessions = self.count(), "new client session");
        Ok(Found {
            client,
            new_token: Some(token),
        })
    }

    pub fn count(&self) -> usize {
        self.sessions.lock().expect("sessions poisoned").len()
    }

    /// Ends the session `metadata` names (CloseSession).
    pub fn close(&self, metadata: &MetadataMap) {
        let presented = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(token) = presented {
            self.sessions
                .lock()
                .expect("sessions poisoned")
                .remove(token.trim());
        }
    }

    pub fn prepare(&self, prepared: Prepared) -> Vec<u8> {
        let handle = uuid::Uuid::new_v4().as_bytes().to_vec();
        self.prepared
            .lock()
            .expect("prepared poisoned")
            .insert(handle.clone(), Arc::new(prepared));
        handle
    }

    pub fn prepared(&self, handle: &[u8]) -> Result<Arc<Prepared>, Status> {
        self.prepared
            .lock()
            .expect("prepared poisoned")
            .get(handle)
            .cloned()
            .ok_or_else(|| {
                Status::not_found("this prepared statement was closed; prepare it again")
            })
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
