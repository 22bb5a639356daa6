//! Binding the arguments of a table-function call to a function's parameters.
//!
//! DataFusion hands a table function its arguments as folded literals, in
//! order. Named arguments (`agg_days => 7`) reach us packed by
//! [`crate::planner`] into one trailing struct literal whose first field is
//! [`NAMED_MARKER`]. Per-call cache options use reserved names.

use std::collections::BTreeMap;

use arrow::array::StructArray;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{plan_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::Expr;
use nuthatch_catalog::key::check_function_name;
use nuthatch_catalog::CacheMode;

use crate::args::Args;
use crate::function::{param_list, CachedFunction};
use crate::options::{is_reserved, reserved_arguments};
use crate::timeseries::parse_settle;
use crate::value::{ParamType, Value};

/// First field of the struct that carries named arguments.
pub const NAMED_MARKER: &str = "__nuthatch_named__";

/// Which calls an option such as `recompute` reaches: Python accepts
/// `True`, a function name, a list of names, or `'_all'`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Select {
    #[default]
    No,
    /// This call only.
    Yes,
    /// The named functions among the calls this one makes (and this one).
    Names(Vec<String>),
    /// Every call this one makes (and this one).
    All,
}

impl Select {
    /// Does the option apply to the call that was given it?
    pub fn is_on(&self) -> bool {
        !matches!(self, Select::No)
    }

    /// What the calls a body makes inherit: `true` stops at this call,
    /// names and `'_all'` go on down.
    pub fn passed_down(&self) -> Select {
        match self {
            Select::Yes => Select::No,
            other => other.clone(),
        }
    }

    /// Does an inherited selection reach a call of `function`?
    pub fn reaches(&self, function: &str) -> bool {
        match self {
            Select::All => true,
            Select::Names(names) => names.iter().any(|n| n == function),
            Select::No | Select::Yes => false,
        }
    }
}

/// Per-call cache options; `None` leaves the function's or the session's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallOptions {
    pub cache_mode: Option<CacheMode>,
    pub recompute: Select,
    pub memoize: Option<Select>,
    pub retry_null_cache: Option<bool>,
    pub fail_if_no_cache: Option<bool>,
    /// `false`: leave root and mirrors out of this call.
    pub cache: Option<bool>,
    pub namespace: Option<String>,
    /// The backend to read (and, unless `storage_backend` says otherwise,
    /// store) this call's entry with.
    pub backend: Option<String>,
    /// The backend to store a computed result with.
    pub storage_backend: Option<String>,
    /// Compute and merge the result into the stored entry by the
    /// function's `upsert_keys`.
    pub upsert: bool,
    /// Compute the call's time window and replace that window of the
    /// stored entry, keeping the rest.
    pub replace_window: bool,
    /// How long after its end what this call computes stays provisional
    /// (the function's `settle` for this call).
    pub settle: Option<std::time::Duration>,
    /// Rewrite the entry's parts as one before reading it.
    pub compact: bool,
    /// Refuse to store values the backend would change (the function's
    /// `exact` for this call).
    pub exact: Option<bool>,
    /// What this call does with a stale entry.
    pub on_stale: Option<nuthatch_catalog::OnStale>,
}

/// A call with every parameter bound.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundCall {
    pub args: Args,
    pub options: CallOptions,
}

/// Binds `exprs` to `function`'s parameters.
pub fn bind(function: &CachedFunction, exprs: &[Expr]) -> Result<BoundCall> {
    let name = function.name();
    let (positional, named) = split_named(exprs)?;
    let params = function.params();
    if positional.len() > params.len() {
        return plan_err!(
            "{name} takes at most {} positional arguments, got {}; signature: {}",
            params.len(),
            positional.len(),
            function.signature()
        );
    }
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    for (i, expr) in positional.iter().enumerate() {
        let Expr::Literal(scalar, _) = expr else {
            return Err(not_constant(name, i + 1, expr));
        };
        let param = &params[i];
        values.insert(
            param.name.clone(),
            coerce(name, &param.name, param.ty, scalar)?,
        );
    }
    let mut options = CallOptions::default();
    for (arg, scalar) in named {
        if is_reserved(&arg) {
            apply_option(name, &mut options, &arg, &scalar)?;
            continue;
        }
        let Some(param) = params.iter().find(|p| p.name == arg) else {
            return plan_err!(
                "{name} has no parameter '{arg}'; its parameters are {} (and the cache options {})",
                param_list(params),
                reserved_arguments().collect::<Vec<_>>().join(", ")
            );
        };
        if values.contains_key(&arg) {
            return plan_err!("argument '{arg}' of {name} is given twice");
        }
        values.insert(arg.clone(), coerce(name, &arg, param.ty, &scalar)?);
    }
    for param in params {
        if values.contains_key(&param.name) {
            continue;
        }
        match &param.default {
            Some(default) => {
                values.insert(param.name.clone(), default.clone());
            }
            None => {
                return plan_err!(
                    "{name} is missing argument '{}' ({}); signature: {}",
                    param.name,
                    param.ty,
                    function.signature()
                )
            }
        }
    }
    Ok(BoundCall {
        args: Args::new(values),
        options,
    })
}

fn coerce(function: &str, param: &str, ty: ParamType, scalar: &ScalarValue) -> Result<Value> {
    ty.coerce(scalar).map_err(|got| {
        DataFusionError::Plan(format!(
            "argument '{param}' of {function} expects {}; {got}",
            ty.describe()
        ))
    })
}

fn apply_option(
    function: &str,
    options: &mut CallOptions,
    arg: &str,
    scalar: &ScalarValue,
) -> Result<()> {
    match arg {
        "cache_mode" => {
            let Value::String(text) = coerce(function, arg, ParamType::String, scalar)? else {
                return plan_err!("cache_mode of {function} must be a string such as 'overwrite'");
            };
            options.cache_mode = Some(text.parse::<CacheMode>()?);
        }
        "recompute" => options.recompute = select(function, arg, scalar)?,
        "memoize" => options.memoize = Some(select(function, arg, scalar)?),
        "retry_null_cache" => options.retry_null_cache = Some(flag(function, arg, scalar)?),
        "fail_if_no_cache" => options.fail_if_no_cache = Some(flag(function, arg, scalar)?),
        "cache" => options.cache = Some(flag(function, arg, scalar)?),
        "namespace" => match coerce(function, arg, ParamType::String, scalar)? {
            Value::String(ns) => options.namespace = Some(check_namespace(&ns)?),
            _ => options.namespace = None,
        },
        "backend" => match coerce(function, arg, ParamType::String, scalar)? {
            Value::String(name) => options.backend = Some(name.trim().to_ascii_lowercase()),
            _ => options.backend = None,
        },
        "storage_backend" => match coerce(function, arg, ParamType::String, scalar)? {
            Value::String(name) => options.storage_backend = Some(name.trim().to_ascii_lowercase()),
            _ => options.storage_backend = None,
        },
        "upsert" => options.upsert = flag(function, arg, scalar)?,
        "replace_window" => options.replace_window = flag(function, arg, scalar)?,
        "compact" => options.compact = flag(function, arg, scalar)?,
        "exact" => options.exact = Some(flag(function, arg, scalar)?),
        "settle" => match coerce(function, arg, ParamType::String, scalar)? {
            Value::String(text) => options.settle = Some(parse_settle(function, &text)?),
            _ => options.settle = None,
        },
        "on_stale" => match coerce(function, arg, ParamType::String, scalar)? {
            Value::String(text) => options.on_stale = Some(text.parse()?),
            _ => options.on_stale = None,
        },
        _ => unreachable!("only reserved names reach here"),
    }
    Ok(())
}

fn flag(function: &str, arg: &str, scalar: &ScalarValue) -> Result<bool> {
    match coerce(function, arg, ParamType::Bool, scalar)? {
        Value::Bool(b) => Ok(b),
        _ => plan_err!("{arg} of {function} must be true or false"),
    }
}

/// `true`/`false`, a function name, `'_all'`, or a list of names.
fn select(function: &str, arg: &str, scalar: &ScalarValue) -> Result<Select> {
    let wrong = || {
        plan_err!(
            "{arg} of {function} must be true, false, a function name, a list of names such as \
             ['a', 'b'], or '_all'"
        )
    };
    if let ScalarValue::Boolean(Some(b)) = scalar {
        return Ok(if *b { Select::Yes } else { Select::No });
    }
    if let ScalarValue::List(list) = scalar {
        let mut names = Vec::new();
        let items = list.value(0);
        for i in 0..items.len() {
            let item = ScalarValue::try_from_array(&items, i)?;
            match item.try_as_str().flatten() {
                Some(name) => names.push(name.trim().to_ascii_lowercase()),
                None => return wrong(),
            }
        }
        return Ok(Select::Names(names));
    }
    match scalar.try_as_str().flatten() {
        Some("_all") => Ok(Select::All),
        Some("true") => Ok(Select::Yes),
        Some("false") => Ok(Select::No),
        Some(name) if check_function_name(name.trim()).is_ok() => {
            Ok(Select::Names(vec![name.trim().to_ascii_lowercase()]))
        }
        _ => wrong(),
    }
}

/// A namespace is a folder name on the store.
pub fn check_namespace(namespace: &str) -> Result<String> {
    let bad = namespace.is_empty()
        || namespace == "."
        || namespace == ".."
        || namespace.contains(['/', '\\'])
        || namespace.chars().any(char::is_control);
    if bad {
        return plan_err!(
            "namespace '{namespace}' cannot be used: it names a folder in the store, so it must \
             be non-empty, not '.' or '..', and free of '/' and '\\'"
        );
    }
    Ok(namespace.to_string())
}

/// Named arguments in the order they were written.
type NamedArgs = Vec<(String, ScalarValue)>;

/// Separates the positional arguments from the packed named ones.
/// Why a non-constant argument (at `position`) cannot be bound, in words
/// that do not show the planner's packing of named arguments.
fn not_constant(name: &str, position: usize, expr: &Expr) -> DataFusionError {
    let placeholder = expr
        .exists(|e| Ok(matches!(e, Expr::Placeholder(_))))
        .unwrap_or(false);
    let named = matches!(expr, Expr::ScalarFunction(f)
        if f.args.first().is_some_and(|a| a.to_string().contains(NAMED_MARKER)));
    let what = match (named, placeholder) {
        (true, true) => format!("a named argument of {name} is a placeholder"),
        (false, true) => format!("argument {position} of {name} is a placeholder"),
        (true, false) => format!("the named arguments of {name} must be constants"),
        (false, false) => format!("argument {position} of {name} must be a constant, got {expr}"),
    };
    let fix = if placeholder {
        "nuthatch does not take bound parameters: write the values into the SQL"
    } else {
        "compute it in the query that uses the result instead"
    };
    DataFusionError::Plan(format!("{what}; {fix}"))
}

fn split_named(exprs: &[Expr]) -> Result<(&[Expr], NamedArgs)> {
    let Some((Expr::Literal(ScalarValue::Struct(array), _), positional)) = exprs.split_last()
    else {
        return Ok((exprs, Vec::new()));
    };
    let fields = array.fields();
    if fields.first().map(|f| f.name().as_str()) != Some(NAMED_MARKER) {
        return Ok((exprs, Vec::new()));
    }
    let array: &StructArray = array;
    let mut named = Vec::new();
    for (field, column) in fields.iter().zip(array.columns()).skip(1) {
        named.push((
            field.name().clone(),
            ScalarValue::try_from_array(column, 0)?,
        ));
    }
    Ok((positional, named))
}
