//! Databases: which one a tier's settings name, the pools that reach it,
//! how an entry's table is named in it, and errors that say what to fix
//! without showing a password.
//!
//! A tier's `sql` settings follow Python nuthatch's: `driver`, `host`,
//! `port`, `database`, `username`, `password`, and `write_username` /
//! `write_password` for writes (used only when both are set, as Python
//! does). With no `driver` on a tier that is a local folder, the database
//! is a SQLite file in that folder, `nuthatch.sqlite`; `driver = "sqlite"`
//! with `database = <file>` names another file.
//!
//! Connections are built from the settings field by field rather than
//! from a URL, so no error of the driver can echo a password back.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use datafusion::common::{DataFusionError, Result};
use md5::{Digest, Md5};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::{Location, Section};

/// The file a local tier's SQLite database lives in.
pub const SQLITE_FILE: &str = "nuthatch.sqlite";

/// PostgreSQL cuts identifiers to 63 bytes; longer keys are stored under
/// their md5, as Python's `hash_table_name` does, so two long keys never
/// land in one table.
const PG_NAME_LIMIT: usize = 63;

/// How long a caller waits for a connection before the database counts as
/// unreachable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections per pool unless `max_connections` says otherwise.
const DEFAULT_POOL_SIZE: u32 = 4;

/// The two SQL engines, which differ in quoting limits, types, how rows
/// are loaded and what a filter may push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// The pools of one engine.
#[derive(Clone)]
pub enum Pools {
    Postgres { read: PgPool, write: PgPool },
    Sqlite { read: SqlitePool, write: SqlitePool },
}

/// One configured database: its pools, and how to name it in messages.
#[derive(Clone)]
pub struct Database {
    pub pools: Pools,
    /// `postgres://user@host:port/db` or `sqlite:<file>`: no password.
    pub shown: String,
    /// The role writes use, for messages.
    pub write_user: Option<String>,
    /// Entries get md5 table names whatever their length.
    pub hash_names: bool,
    /// For PostgreSQL, the settings to open one connection outside the
    /// pools, which tells why a pool could not connect.
    direct: Option<PgConnectOptions>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Database {
    /// The SQLite file, for a SQLite database: whether it exists tells a
    /// reader that must not create it whether there is anything to read.
    pub fn sqlite_file(&self) -> Option<&str> {
        self.shown.strip_prefix("sqlite:")
    }

    pub fn dialect(&self) -> Dialect {
        match self.pools {
            Pools::Postgres { .. } => Dialect::Postgres,
            Pools::Sqlite { .. } => Dialect::Sqlite,
        }
    }

    /// The error for a failure of the driver while `doing` something.
    pub async fn error(&self, doing: &str, error: sqlx::Error) -> DataFusionError {
        let reason = match &error {
            sqlx::Error::PoolTimedOut => match self.why_unreachable().await {
                Some(why) => format!("it cannot be reached ({why})"),
                None => format!(
                    "no connection came free within {}s; raise max_connections in the tier's \
                     sql settings or run fewer queries at once",
                    ACQUIRE_TIMEOUT.as_secs()
                ),
            },
            sqlx::Error::Io(e) => format!("the connection to the database was lost ({e})"),
            sqlx::Error::Database(db) if db.code().as_deref() == Some("42501") => {
                let user = self.write_user.as_deref().unwrap_or("the configured user");
                format!(
                    "{}: the database refused {user}; give it the privilege, or set \
                     write_username and write_password in the tier's sql settings to a role \
                     that may create tables",
                    db.message()
                )
            }
            sqlx::Error::Database(db) => db.message().to_string(),
            other => other.to_string(),
        };
        DataFusionError::Execution(format!("{doing} in {}: {reason}", self.shown))
    }

    /// Opens one connection directly to learn why the pool could not.
    async fn why_unreachable(&self) -> Option<String> {
        let options = self.direct.as_ref()?;
        let attempt = tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect()).await;
        match attempt {
            Err(_) => Some(format!("no answer within {}s", ACQUIRE_TIMEOUT.as_secs())),
            Ok(Err(e)) => Some(e.to_string()),
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                None
            }
        }
    }
}

/// The settings that pick a database, as a key for the pool cache.
#[derive(Clone, PartialEq, Eq)]
struct Target {
    driver: Driver,
    host: String,
    port: u16,
    database: String,
    username: String,
    password: String,
    write: Option<(String, String)>,
    pool_size: u32,
    hash_names: bool,
}

impl Hash for Target {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.driver, &self.host, self.port, &self.database).hash(state);
        (&self.username, &self.password, &self.write).hash(state);
        (self.pool_size, self.hash_names).hash(state);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Driver {
    Postgres,
    Sqlite,
}

/// Opened databases, one per distinct setting, so every call on a tier
/// shares a bounded set of connections.
#[derive(Default)]
pub struct Databases {
    open: Mutex<HashMap<Target, Database>>,
}

impl fmt::Debug for Databases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open = self.open.lock().map(|o| o.len()).unwrap_or(0);
        write!(f, "Databases({open} open)")
    }
}

impl Databases {
    /// The database `at`'s settings name. Pools open lazily: nothing is
    /// contacted until a query runs.
    pub fn get(&self, at: &Location) -> Result<Database> {
        let settings = at.settings.get::<SqlSettings>();
        self.open(settings, at.folder.as_ref(), "sql", SQLITE_FILE)
    }

    /// The database `settings` name (the defaults when `None`) for the
    /// format `backend`, whose section messages name: with no driver, the
    /// SQLite file `file` in `folder`, the tier's local folder. Formats
    /// other than `sql` that keep rows in the tier's database (Terracotta)
    /// reach it through this.
    pub fn open(
        &self,
        settings: Option<&SqlSettings>,
        folder: Option<&PathBuf>,
        backend: &str,
        file: &str,
    ) -> Result<Database> {
        let target = target(settings, folder, backend, file)?;
        let mut open = self.open.lock().expect("database pools");
        if let Some(database) = open.get(&target) {
            return Ok(database.clone());
        }
        let database = connect(&target);
        open.insert(target, database.clone());
        Ok(database)
    }
}

/// The SQL backend's settings on a tier, as read when it opens: values that
/// cannot be used (a port that is not a number) are refused then; what a
/// database needs but lacks is said when a call first uses it, since a
/// Python project may set parameters for its other backends.
#[derive(Clone, Default)]
pub struct SqlSettings {
    driver: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    database: Option<String>,
    username: Option<String>,
    password: Option<String>,
    write: Option<(String, String)>,
    pool_size: u32,
    hash_names: bool,
}

impl SqlSettings {
    /// The keys a tier's `sql` section takes.
    pub const NAMES: [&'static str; 10] = [
        "driver",
        "host",
        "port",
        "database",
        "username",
        "password",
        "write_username",
        "write_password",
        "max_connections",
        "hash_table_name",
    ];

    pub fn read(section: Section<'_>) -> Result<SqlSettings> {
        let text = |name: &str| section.get(name).map(str::to_string);
        let pool_size =
            match section.get("max_connections") {
                Some(n) => n.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    section.invalid("max_connections", "a whole number above 0", n)
                })?,
                None => DEFAULT_POOL_SIZE,
            };
        let hash_names = match section.get("hash_table_name") {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => return Err(section.invalid("hash_table_name", "true or false", other)),
        };
        let port = match section.get("port") {
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| section.invalid("port", "a number from 1 to 65535", p))?,
            ),
            None => None,
        };
        let write = match (text("write_username"), text("write_password")) {
            (Some(user), Some(password)) => Some((user, password)),
            _ => None,
        };
        Ok(SqlSettings {
            driver: text("driver").map(|d| d.to_ascii_lowercase()),
            host: text("host"),
            port,
            database: text("database"),
            username: text("username"),
            password: text("password"),
            write,
            pool_size,
            hash_names,
        })
    }
}

/// The database `settings` name; with no driver, `file` in `folder`.
fn target(
    settings: Option<&SqlSettings>,
    folder: Option<&PathBuf>,
    backend: &str,
    file: &str,
) -> Result<Target> {
    let config = |text: String| DataFusionError::Configuration(text);
    let default = SqlSettings {
        pool_size: DEFAULT_POOL_SIZE,
        ..SqlSettings::default()
    };
    let settings = settings.unwrap_or(&default);
    let sqlite_file = |file: PathBuf| Target {
        driver: Driver::Sqlite,
        host: String::new(),
        port: 0,
        database: file.display().to_string(),
        username: String::new(),
        password: String::new(),
        write: None,
        pool_size: settings.pool_size,
        hash_names: settings.hash_names,
    };
    match settings.driver.as_deref() {
        None => {
            let folder = folder.ok_or_else(|| {
                config(format!(
                    "the {backend} backend needs a database on this tier: set driver, host, \
                     port, database, username and password in its {backend} section (as in \
                     [tool.nuthatch.root.{backend}]); a SQLite file is made only beside a tier \
                     that is a local folder"
                ))
            })?;
            let folder = std::path::absolute(folder)
                .map_err(|e| config(format!("{}: {e}", folder.display())))?;
            Ok(sqlite_file(folder.join(file)))
        }
        Some(d) if d.starts_with("sqlite") => {
            let file = settings
                .database
                .clone()
                .map(PathBuf::from)
                .or_else(|| folder.map(|f| f.join(file)));
            let file = file.ok_or_else(|| {
                config("driver sqlite needs database = <file of the SQLite database>".to_string())
            })?;
            Ok(sqlite_file(file))
        }
        Some(d) if d.starts_with("postgres") => {
            let given = [
                ("host", &settings.host),
                ("database", &settings.database),
                ("username", &settings.username),
            ];
            let missing: Vec<&str> = given
                .iter()
                .filter(|(_, value)| value.is_none())
                .map(|(name, _)| *name)
                .collect();
            if !missing.is_empty() {
                return Err(config(format!(
                    "the {d} database of this tier needs {} in its {backend} settings",
                    missing.join(", ")
                )));
            }
            Ok(Target {
                driver: Driver::Postgres,
                host: settings.host.clone().unwrap_or_default(),
                port: settings.port.unwrap_or(5432),
                database: settings.database.clone().unwrap_or_default(),
                username: settings.username.clone().unwrap_or_default(),
                password: settings.password.clone().unwrap_or_default(),
                write: settings.write.clone(),
                pool_size: settings.pool_size,
                hash_names: settings.hash_names,
            })
        }
        Some(other) => Err(config(format!(
            "driver {other} is not supported by the {backend} backend; use postgresql or sqlite"
        ))),
    }
}

/// Builds the pools of `target`, connecting lazily.
fn connect(target: &Target) -> Database {
    match target.driver {
        Driver::Postgres => {
            let options = |user: &str, password: &str| {
                PgConnectOptions::new()
                    .host(&target.host)
                    .port(target.port)
                    .database(&target.database)
                    .username(user)
                    .password(password)
                    .application_name("nuthatch")
                    // Timestamps without a zone are compared and shown as UTC.
                    .options([("timezone", "UTC")])
                    // A long load is not a slow query worth a warning.
                    .disable_statement_logging()
            };
            let pool = |options: PgConnectOptions| {
                PgPoolOptions::new()
                    .max_connections(target.pool_size)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy_with(options)
            };
            let read = options(&target.username, &target.password);
            let (write_user, write) = match &target.write {
                Some((user, password)) => (user.clone(), pool(options(user, password))),
                None => (target.username.clone(), pool(read.clone())),
            };
            Database {
                pools: Pools::Postgres {
                    read: pool(read.clone()),
                    write,
                },
                shown: format!(
                    "postgres://{}@{}:{}/{}",
                    target.username, target.host, target.port, target.database
                ),
                write_user: Some(write_user),
                hash_names: target.hash_names,
                direct: Some(read),
            }
        }
        Driver::Sqlite => {
            let options = SqliteConnectOptions::new()
                .filename(&target.database)
                .create_if_missing(true)
                // Readers keep reading the old table while a write runs.
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(30))
                .disable_statement_logging();
            let read = SqlitePoolOptions::new()
                .max_connections(target.pool_size)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_lazy_with(options.clone());
            // SQLite takes one writer at a time.
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(ACQUIRE_TIMEOUT * 6)
                .connect_lazy_with(options);
            Database {
                pools: Pools::Sqlite { read, write },
                shown: format!("sqlite:{}", target.database),
                write_user: None,
                hash_names: target.hash_names,
                direct: None,
            }
        }
    }
}

/// A table's name: an optional schema and the table, each quoted when
/// written into SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub table: String,
}

impl TableName {
    /// `"schema"."table"`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", quote(schema), quote(&self.table)),
            None => quote(&self.table),
        }
    }

    /// A sibling table in the same schema.
    pub fn sibling(&self, table: String) -> TableName {
        TableName {
            schema: self.schema.clone(),
            table,
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted())
    }
}

/// Quotes an identifier: inside double quotes, a double quote is written
/// twice, and nothing else is special, so any name is one identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// md5 of `text` in hex, as Python's `hashlib.md5(...).hexdigest()`.
pub fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The names an entry's table may have, the one writes use first.
///
/// PostgreSQL puts a namespace in a schema of that name (Python writes the
/// one identifier `"ns.key"` instead, a table whose name has a dot in the
/// default schema; it is looked for too, so Python's entries read). SQLite
/// has no schemas, so the table is `"ns/key"`, the data path's spelling.
pub fn table_names(database: &Database, at: &Location) -> Result<Vec<TableName>> {
    let key = at.key.as_str();
    if key.is_empty()
        || key.contains('\0')
        || at.namespace.as_deref().is_some_and(|n| n.contains('\0'))
    {
        return Err(DataFusionError::Configuration(format!(
            "{key:?} cannot name a table: a key must be non-empty and have no NUL character"
        )));
    }
    let hashed = md5_hex(key);
    let mut names = Vec::new();
    match database.dialect() {
        Dialect::Postgres => {
            let schema = at.namespace.clone();
            let long = key.len() > PG_NAME_LIMIT;
            let first = if database.hash_names || long {
                &hashed
            } else {
                key
            };
            names.push(TableName {
                schema: schema.clone(),
                table: first.to_string(),
            });
            if !long && !database.hash_names {
                names.push(TableName {
                    schema: schema.clone(),
                    table: hashed,
                });
            } else if !long {
                names.push(TableName {
                    schema: schema.clone(),
                    table: key.to_string(),
                });
            }
            if let Some(ns) = &at.namespace {
                let dotted = format!("{ns}.{key}");
                if dotted.len() <= PG_NAME_LIMIT {
                    names.push(TableName {
                        schema: None,
                        table: dotted,
                    });
                }
            }
        }
        Dialect::Sqlite => {
            let prefix = at
                .namespace
                .as_ref()
                .map(|ns| format!("{ns}/"))
                .unwrap_or_default();
            let (first, second) = if database.hash_names {
                (hashed, key.to_string())
            } else {
                (key.to_string(), hashed)
            };
            names.push(TableName {
                schema: None,
                table: format!("{prefix}{first}"),
            });
            names.push(TableName {
                schema: None,
                table: format!("{prefix}{second}"),
            });
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_text_quotes_to_one_identifier() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(
            quote("a\"; DROP TABLE x; --"),
            "\"a\"\"; DROP TABLE x; --\""
        );
    }

    #[test]
    fn md5_matches_python() {
        // hashlib.md5(b"").hexdigest()
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
