//! Definition fingerprints: a hash of everything in a function's definition
//! that decides what its entries hold, so an entry can tell that the
//! definition that computed it is not the current one.
//!
//! A function's own part (`own`) is fixed when it is built:
//!
//! - a SQL body as parsed, printed back from its syntax tree, so comments,
//!   whitespace and the spelling of keywords do not count;
//! - a Rust body's `version` and the text the author gives with
//!   [`crate::CachedFunctionBuilder::fingerprint`] (its code has no text to
//!   hash);
//! - the parameters with their types and defaults, the columns returned,
//!   and the options that change what is stored: `version`, `timeseries`,
//!   `coverage`, `order_by`, `backend`, `storage_backend`, `exact`, the
//!   grid's dimensions and `upsert_keys`. Options that only decide where
//!   or whether to cache (`cache_args`, `namespace`, `memoize`, modes,
//!   chunking) do not count.
//!
//! The whole fingerprint ([`CachedFunction::fingerprint`]) adds, when it is
//! asked for, the current fingerprints of the cached functions a SQL body
//! calls, so redefining one of them changes the fingerprint of every
//! function that calls it, however deep. Each is a SHA-256, shown as 32
//! hex digits behind the scheme's number (`1:`), so that a later scheme
//! reads as changed, never as equal.

use std::fmt::Write;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{visit_relations, Query};
use nuthatch_catalog::Fingerprint;
use sha2::{Digest, Sha256};

use crate::function::{Body, CachedFunction, Param};
use crate::options::FunctionOptions;
use crate::registry::Registry;

/// The scheme fingerprints are written in.
const SCHEME: &str = "1:";

/// Deeper call chains than this are taken for a cycle of definitions
/// (which calls would refuse anyway); the chain stops counting there.
const MAX_DEPTH: usize = 32;

/// The own fingerprint of a definition (see the module docs).
pub(crate) fn own(
    params: &[Param],
    options: &FunctionOptions,
    schema: &arrow::datatypes::Schema,
    body: &Body,
    author: Option<&str>,
) -> String {
    let mut text = String::new();
    match body {
        Body::Sql(body) => {
            let _ = writeln!(text, "sql {}", body.text());
        }
        Body::Rust(_) => {
            let _ = writeln!(text, "rust {}", author.unwrap_or(""));
        }
    }
    for param in params {
        let default = param.default.as_ref().map(|d| d.sql_literal());
        let _ = writeln!(text, "param {} {} {default:?}", param.name, param.ty);
    }
    for field in schema.fields() {
        let _ = writeln!(text, "column {} {}", field.name(), field.data_type());
    }
    let _ = writeln!(
        text,
        "version {:?} timeseries {:?} coverage {:?} order_by {:?} backend {:?} \
         storage_backend {:?} exact {} dimensions {:?} upsert_keys {:?}",
        options.version,
        options.timeseries,
        options.coverage,
        options.order_by,
        options.backend,
        options.storage_backend,
        options.exact,
        options.grid.dimensions,
        options.upsert_keys,
    );
    digest(&text)
}

/// The functions a SQL body names in its `FROM` clauses, lower-case, each
/// once: the cached ones among them count in the fingerprint.
pub(crate) fn called(query: &Query) -> Vec<String> {
    let mut names = Vec::new();
    let _ = visit_relations(query, |name| {
        let name = name.to_string().to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
        ControlFlow::<()>::Continue(())
    });
    names
}

fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    let mut hex = String::from(SCHEME);
    for byte in &hash[..16] {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

impl CachedFunction {
    /// The fingerprint of this definition as it stands in `registry`: its
    /// own, and those of the cached functions its body calls.
    pub fn fingerprint(&self, registry: &Registry) -> Fingerprint {
        self.fingerprint_within(registry, 0)
    }

    fn fingerprint_within(&self, registry: &Registry, depth: usize) -> Fingerprint {
        let mut calls = Vec::new();
        if depth < MAX_DEPTH {
            for name in &self.calls {
                if let Some(callee) = registry.get(name) {
                    let whole = callee.fingerprint_within(registry, depth + 1).whole;
                    calls.push((name.clone(), whole));
                }
            }
        }
        let whole = match calls.is_empty() {
            true => self.own_fingerprint.clone(),
            false => {
                let mut text = self.own_fingerprint.clone();
                for (name, fingerprint) in &calls {
                    let _ = write!(text, "\n{name} {fingerprint}");
                }
                digest(&text)
            }
        };
        Fingerprint {
            whole,
            own: self.own_fingerprint.clone(),
            calls,
        }
    }
}

impl nuthatch_catalog::Definitions for Registry {
    fn fingerprint(&self, function: &str) -> Option<Fingerprint> {
        self.get(function).map(|f| f.fingerprint(self))
    }
}

#[cfg(test)]
mod tests {
    use crate::definition::CreateCachedFunction;

    fn own_of(sql: &str) -> String {
        let def = CreateCachedFunction::parse(sql).unwrap().unwrap();
        let body = crate::function::Body::Sql(def.body.clone());
        let schema = arrow::datatypes::Schema::empty();
        super::own(&def.params, &def.options, &schema, &body, None)
    }

    #[test]
    fn layout_does_not_count_and_the_body_does() {
        let a = own_of("CREATE CACHED FUNCTION f(n BIGINT) AS SELECT $n AS x FROM t");
        let b = own_of(
            "create cached function f(n BIGINT) as\n  -- the same\n  select $n as x\n  from t",
        );
        let c = own_of("CREATE CACHED FUNCTION f(n BIGINT) AS SELECT $n + 1 AS x FROM t");
        let d = own_of(
            "CREATE CACHED FUNCTION f(n BIGINT) WITH (version = '2') AS SELECT $n AS x FROM t",
        );
        let e = own_of(
            "CREATE CACHED FUNCTION f(n BIGINT) WITH (memoize = true) AS SELECT $n AS x FROM t",
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a, e, "memoize decides nothing about what is stored");
        assert!(a.starts_with("1:") && a.len() == 34, "{a}");
    }

    #[test]
    fn the_functions_a_body_reads_from_are_named() {
        let def = CreateCachedFunction::parse(
            "CREATE CACHED FUNCTION f() AS SELECT * FROM My_First_Cache() JOIN t USING (k)",
        )
        .unwrap()
        .unwrap();
        assert_eq!(def.body.called(), vec!["my_first_cache", "t"]);
    }
}
