//! The Terracotta database: the tables Terracotta 0.8 keeps (`terracotta`
//! with its version, `key_names`, `datasets`, `metadata`), created when
//! missing as Terracotta creates them, with the one key Python nuthatch
//! registers datasets under (`key`).
//!
//! Rows go in one transaction per write, so a write killed before it
//! commits registers nothing, and come out by exact key (Python's delete
//! removes every key that starts with the entry's, which can take another
//! entry's datasets with it).
//!
//! Terracotta's columns are kept as it writes them, including its naming:
//! `bounds_north` holds the west bound, `bounds_east` the south,
//! `bounds_south` the east and `bounds_west` the north (it reads them back
//! in the same order, so its server and Python see the right box).

use datafusion::common::{DataFusionError, Result};
// Statements are put together from this module's constants only; every
// value is bound.
use sqlx::AssertSqlSafe;

use super::metadata::Metadata;
use crate::sql::database::Pools;

/// The version Terracotta stamps a database with; Terracotta 0.8 opens any
/// `0.8.x`, and Python nuthatch 0.4.11 installs 0.8.6.
pub const VERSION: &str = "0.8.6";

/// One dataset to register: its key, the path Terracotta opens, and its
/// metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub key: String,
    pub path: String,
    pub metadata: Metadata,
}

/// The tables, for PostgreSQL and for SQLite (Terracotta's key lengths
/// for one key: 682 and 256).
fn schema(postgres: bool) -> [String; 4] {
    let (key, float, bytes) = match postgres {
        true => ("VARCHAR(682)", "FLOAT(8)", "BYTEA"),
        false => ("VARCHAR(256)", "FLOAT", "BLOB"),
    };
    [
        "CREATE TABLE IF NOT EXISTS terracotta (version VARCHAR(255) NOT NULL, PRIMARY KEY (version))"
            .to_string(),
        format!(
            "CREATE TABLE IF NOT EXISTS key_names (key_name {key} NOT NULL, description \
             VARCHAR(8000), idx INTEGER, PRIMARY KEY (key_name), UNIQUE (idx))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS datasets (key {key} NOT NULL, path VARCHAR(8000), \
             PRIMARY KEY (key))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS metadata (key {key} NOT NULL, bounds_north {float}, \
             bounds_east {float}, bounds_south {float}, bounds_west {float}, convex_hull TEXT, \
             valid_percentage {float}, min {float}, max {float}, mean {float}, stdev {float}, \
             percentiles {bytes}, metadata TEXT, PRIMARY KEY (key))"
        ),
    ]
}

/// The error of a statement that failed while `doing` something.
fn failed(doing: &str) -> impl Fn(sqlx::Error) -> DataFusionError + '_ {
    move |e| DataFusionError::Execution(format!("the Terracotta database, {doing}: {e}"))
}

/// Runs `$body` in one transaction of the write pool, committed after it,
/// for either engine: the body is written once and compiled for each
/// (`$postgres` says which, for its placeholders and float widths).
macro_rules! in_transaction {
    ($pools:expr, $doing:expr, |$tx:ident, $postgres:ident| $body:block) => {
        match $pools {
            Pools::Postgres { write, .. } => {
                let $postgres = true;
                let mut $tx = write.begin().await.map_err(failed("starting"))?;
                $body
                $tx.commit().await.map_err(failed($doing))
            }
            Pools::Sqlite { write, .. } => {
                let $postgres = false;
                let mut $tx = write.begin().await.map_err(failed("starting"))?;
                $body
                $tx.commit().await.map_err(failed($doing))
            }
        }
    };
}

/// `statement` with its `?` placeholders numbered (`$1`, ...) for
/// PostgreSQL.
fn placeholders(statement: &str, postgres: bool) -> AssertSqlSafe<String> {
    if !postgres {
        return AssertSqlSafe(statement.to_string());
    }
    let mut numbered = String::with_capacity(statement.len() + 16);
    let mut n = 0;
    for c in statement.chars() {
        if c == '?' {
            n += 1;
            numbered.push_str(&format!("${n}"));
        } else {
            numbered.push(c);
        }
    }
    AssertSqlSafe(numbered)
}

/// Checks that `version` is one Terracotta 0.8 opens.
fn check_version(version: Option<String>) -> Result<()> {
    match version {
        Some(v) if !v.starts_with("0.8.") => Err(DataFusionError::Execution(format!(
            "the Terracotta database is of version {v}, and this build writes Terracotta 0.8 \
             databases (the release Python nuthatch 0.4.11 installs); point the tier's \
             terracotta settings at another database"
        ))),
        _ => Ok(()),
    }
}

/// Creates Terracotta's tables and rows where they are missing, and
/// refuses a database of another Terracotta release.
pub async fn prepare(pools: &Pools) -> Result<()> {
    in_transaction!(pools, "committing its tables", |tx, postgres| {
        for statement in schema(postgres) {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await
                .map_err(failed("creating its tables"))?;
        }
        let version: Option<String> = sqlx::query_scalar("SELECT version FROM terracotta")
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed("reading its version"))?;
        check_version(version.clone())?;
        if version.is_none() {
            let stamp = "INSERT INTO terracotta (version) VALUES (?)";
            sqlx::query(placeholders(stamp, postgres))
                .bind(VERSION)
                .execute(&mut *tx)
                .await
                .map_err(failed("stamping its version"))?;
            sqlx::query("INSERT INTO key_names (key_name, description, idx) VALUES ('key', '', 0)")
                .execute(&mut *tx)
                .await
                .map_err(failed("naming its key"))?;
        }
    })
}

/// The 99 percentiles as Terracotta stores them: little-endian float32.
fn percentile_bytes(metadata: &Metadata) -> Vec<u8> {
    (metadata.percentiles.iter())
        .flat_map(|p| (*p as f32).to_le_bytes())
        .collect()
}

/// Registers `datasets`, and removes the datasets of `replaced` keys, in
/// one transaction.
pub async fn register(pools: &Pools, datasets: &[Dataset], replaced: &[String]) -> Result<()> {
    in_transaction!(pools, "committing the datasets", |tx, postgres| {
        for key in replaced.iter().chain(datasets.iter().map(|d| &d.key)) {
            for table in ["datasets", "metadata"] {
                let remove = format!("DELETE FROM {table} WHERE key = ?");
                sqlx::query(placeholders(&remove, postgres))
                    .bind(key)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed("removing a dataset"))?;
            }
        }
        for dataset in datasets {
            let register = "INSERT INTO datasets (key, path) VALUES (?, ?)";
            sqlx::query(placeholders(register, postgres))
                .bind(&dataset.key)
                .bind(&dataset.path)
                .execute(&mut *tx)
                .await
                .map_err(failed("registering a dataset"))?;
            let m = &dataset.metadata;
            let numbers = [
                m.bounds[0],
                m.bounds[1],
                m.bounds[2],
                m.bounds[3],
                m.valid_percentage,
                m.min,
                m.max,
                m.mean,
                m.stdev,
            ];
            let record = format!(
                "INSERT INTO metadata (key, convex_hull, percentiles, metadata, bounds_north, \
                 bounds_east, bounds_south, bounds_west, valid_percentage, min, max, mean, \
                 stdev) VALUES (?, ?, ?, '{{}}'{})",
                ", ?".repeat(numbers.len())
            );
            let mut query = sqlx::query(placeholders(&record, postgres))
                .bind(&dataset.key)
                .bind(&m.convex_hull)
                .bind(percentile_bytes(m));
            for number in numbers {
                // PostgreSQL's FLOAT(8) is a real: its values go as float32.
                query = match postgres {
                    true => query.bind(number as f32),
                    false => query.bind(number),
                };
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(failed("recording a dataset's metadata"))?;
        }
    })
}

/// One registered dataset as read back: its key, path and metadata (none
/// when Terracotta has yet to compute it).
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub key: String,
    pub path: Option<String>,
    /// West, south, east, north.
    pub bounds: Option<[f64; 4]>,
    pub valid_percentage: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub stdev: Option<f64>,
}

/// The datasets and their metadata, by key (TC's bounds columns read back
/// in its order); none when the database has no Terracotta tables.
const LIST: &str = "SELECT d.key, d.path, m.bounds_north, m.bounds_east, m.bounds_south, \
    m.bounds_west, m.valid_percentage, m.min, m.max, m.mean, m.stdev FROM datasets d \
    LEFT JOIN metadata m ON m.key = d.key ORDER BY d.key";

type Row<F> = (
    String,
    Option<String>,
    Option<F>,
    Option<F>,
    Option<F>,
    Option<F>,
    Option<F>,
    Option<F>,
    Option<F>,
    Option<F>,
    Option<F>,
);

fn registered<F: Into<f64>>(row: Row<F>) -> Registered {
    let wide = |v: Option<F>| v.map(Into::into);
    let (key, path, west, south, east, north, valid, min, max, mean, stdev) = row;
    let bounds = match (wide(west), wide(south), wide(east), wide(north)) {
        (Some(w), Some(s), Some(e), Some(n)) => Some([w, s, e, n]),
        _ => None,
    };
    Registered {
        key,
        path,
        bounds,
        valid_percentage: wide(valid),
        min: wide(min),
        max: wide(max),
        mean: wide(mean),
        stdev: wide(stdev),
    }
}

/// Every dataset registered in the database.
pub async fn datasets(pools: &Pools) -> Result<Vec<Registered>> {
    match pools {
        Pools::Postgres { read, .. } => {
            let exists: bool = sqlx::query_scalar("SELECT to_regclass('datasets') IS NOT NULL")
                .fetch_one(read)
                .await
                .map_err(failed("looking for its tables"))?;
            if !exists {
                return Ok(Vec::new());
            }
            // PostgreSQL's FLOAT(8) is a real.
            let rows: Vec<Row<f32>> = sqlx::query_as(LIST)
                .fetch_all(read)
                .await
                .map_err(failed("listing its datasets"))?;
            Ok(rows.into_iter().map(registered).collect())
        }
        Pools::Sqlite { read, .. } => {
            let exists: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'datasets'",
            )
            .fetch_one(read)
            .await
            .map_err(failed("looking for its tables"))?;
            if exists == 0 {
                return Ok(Vec::new());
            }
            let rows: Vec<Row<f64>> = sqlx::query_as(LIST)
                .fetch_all(read)
                .await
                .map_err(failed("listing its datasets"))?;
            Ok(rows.into_iter().map(registered).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    fn metadata(offset: f64) -> Metadata {
        Metadata {
            bounds: [-30.5 + offset, -60.0, 30.0, 59.5],
            convex_hull: "{\"type\": \"Polygon\", \"coordinates\": []}".into(),
            valid_percentage: 97.5,
            min: 1.0,
            max: 9.0,
            mean: 5.0,
            stdev: 2.0,
            percentiles: (1..100).map(|p| p as f64 / 10.0).collect(),
        }
    }

    #[tokio::test]
    async fn tables_are_terracottas_and_rows_go_by_exact_key() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("terracotta.sqlite"))
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .unwrap();
        let pools = Pools::Sqlite {
            read: pool.clone(),
            write: pool.clone(),
        };
        prepare(&pools).await.unwrap();
        prepare(&pools).await.unwrap();
        let version: String = sqlx::query_scalar("SELECT version FROM terracotta")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(version, "0.8.6");
        let dataset = |key: &str, offset: f64| Dataset {
            key: key.into(),
            path: format!("/store/{key}.tif"),
            metadata: metadata(offset),
        };
        register(&pools, &[dataset("f_a", 0.0), dataset("f_a1", 1.0)], &[])
            .await
            .unwrap();
        // Terracotta's naming: the west bound in bounds_north.
        let (west, percentiles): (f64, Vec<u8>) =
            sqlx::query_as("SELECT bounds_north, percentiles FROM metadata WHERE key = 'f_a'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(west, -30.5);
        assert_eq!(percentiles.len(), 99 * 4);
        assert_eq!(
            f32::from_le_bytes(percentiles[..4].try_into().unwrap()),
            0.1
        );
        // A new write of f_a replaces its rows and leaves f_a1's alone.
        register(&pools, &[dataset("f_a", 2.0)], &[]).await.unwrap();
        let keys: Vec<(String, f64)> =
            sqlx::query_as("SELECT key, bounds_north FROM metadata ORDER BY key")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            keys,
            [("f_a".to_string(), -28.5), ("f_a1".to_string(), -29.5)]
        );
        register(&pools, &[], &["f_a".to_string()]).await.unwrap();
        let left: Vec<String> = sqlx::query_scalar("SELECT key FROM datasets")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(left, ["f_a1"]);

        sqlx::query("UPDATE terracotta SET version = '0.10.1'")
            .execute(&pool)
            .await
            .unwrap();
        let error = prepare(&pools).await.unwrap_err().to_string();
        assert!(error.contains("is of version 0.10.1"), "{error}");
    }
}
