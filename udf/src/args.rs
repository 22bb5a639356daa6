//! The bound arguments of a call, as a body receives them.

use std::collections::BTreeMap;

use datafusion::common::{DataFusionError, Result};

use crate::value::Value;

/// The bound arguments a body receives, by parameter name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    values: BTreeMap<String, Value>,
}

impl Args {
    pub fn new(values: BTreeMap<String, Value>) -> Self {
        Args { values }
    }

    /// These arguments with `name` set to `value`.
    pub fn with(&self, name: &str, value: Value) -> Args {
        let mut values = self.values.clone();
        values.insert(name.to_string(), value);
        Args { values }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.values.iter()
    }

    fn typed<T>(&self, name: &str, what: &str, read: impl Fn(&Value) -> Option<T>) -> Result<T> {
        let value = self.values.get(name).ok_or_else(|| {
            DataFusionError::Execution(format!("the function has no argument '{name}'"))
        })?;
        read(value).ok_or_else(|| {
            DataFusionError::Execution(format!("argument '{name}' is {value:?}, not {what}"))
        })
    }

    pub fn i64(&self, name: &str) -> Result<i64> {
        self.typed(name, "an integer", Value::as_i64)
    }

    pub fn f64(&self, name: &str) -> Result<f64> {
        self.typed(name, "a number", Value::as_f64)
    }

    pub fn str(&self, name: &str) -> Result<&str> {
        let value = self.values.get(name);
        match value.and_then(Value::as_str) {
            Some(s) => Ok(s),
            None => Err(DataFusionError::Execution(format!(
                "argument '{name}' is not a string"
            ))),
        }
    }

    pub fn bool(&self, name: &str) -> Result<bool> {
        self.typed(name, "a boolean", Value::as_bool)
    }

    /// A timestamp or date argument; `None` when it was passed as NULL.
    pub fn timestamp(&self, name: &str) -> Result<Option<chrono::NaiveDateTime>> {
        match self.values.get(name) {
            Some(Value::Null) => Ok(None),
            _ => self
                .typed(name, "a timestamp", Value::as_timestamp)
                .map(Some),
        }
    }
}
