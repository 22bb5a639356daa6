//! Errors as gRPC statuses: the text the binary prints, and a code ADBC
//! turns into the right Python exception (INVALID_ARGUMENT → ProgrammingError
//! for mistakes in the statement, INTERNAL → InternalError otherwise).

use datafusion::error::DataFusionError;
use nuthatch_udf::error_message;
use tonic::Status;

pub fn to_status(error: DataFusionError) -> Status {
    let text = error_message(&error);
    match error.find_root() {
        DataFusionError::Plan(_)
        | DataFusionError::SQL(..)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => Status::invalid_argument(text),
        DataFusionError::ResourcesExhausted(_) => Status::resource_exhausted(text),
        _ => Status::internal(text),
    }
}

pub fn arrow_status(error: arrow::error::ArrowError) -> Status {
    Status::internal(error.to_string())
}
