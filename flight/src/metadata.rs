//! What a client can ask about the server and its tables: GetSqlInfo and
//! the catalog listings ADBC's `adbc_get_info`, `adbc_get_objects` and
//! `adbc_get_table_schema` use. The builders filter by catalog, pattern and
//! table type themselves, so every table of the session is appended.

use std::sync::OnceLock;

use arrow::array::RecordBatch;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables, SqlInfo,
    SqlSupportedTransaction,
};
use datafusion::datasource::TableType;
use nuthatch_udf::Session;
use tonic::Status;

use crate::status::to_status;

/// The answers to GetSqlInfo, built once.
pub fn sql_info() -> &'static SqlInfoData {
    static INFO: OnceLock<SqlInfoData> = OnceLock::new();
    INFO.get_or_init(|| {
        let mut builder = SqlInfoDataBuilder::new();
        builder.append(SqlInfo::FlightSqlServerName, "nuthatch");
        builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        builder.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        builder.append(SqlInfo::FlightSqlServerReadOnly, false);
        builder.append(SqlInfo::FlightSqlServerSql, true);
        builder.append(SqlInfo::FlightSqlServerSubstrait, false);
        builder.append(
            SqlInfo::FlightSqlServerTransaction,
            SqlSupportedTransaction::None as i32,
        );
        builder.build().expect("static SqlInfo values build")
    })
}

fn table_type(kind: TableType) -> &'static str {
    match kind {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

pub fn catalogs(session: &Session, command: CommandGetCatalogs) -> Result<RecordBatch, Status> {
    let mut builder = command.into_builder();
    for name in session.context().catalog_names() {
        builder.append(name);
    }
    builder.build().map_err(Status::from)
}

pub fn schemas(session: &Session, command: CommandGetDbSchemas) -> Result<RecordBatch, Status> {
    let mut builder = command.into_builder();
    let ctx = session.context();
    for catalog_name in ctx.catalog_names() {
        if let Some(catalog) = ctx.catalog(&catalog_name) {
            for schema_name in catalog.schema_names() {
                builder.append(&catalog_name, schema_name);
            }
        }
    }
    builder.build().map_err(Status::from)
}

pub async fn tables(session: &Session, command: CommandGetTables) -> Result<RecordBatch, Status> {
    session.refresh_functions();
    let mut builder = command.into_builder();
    for table in session.tables().await.map_err(to_status)? {
        builder
            .append(
                &table.catalog,
                &table.schema,
                &table.name,
                table_type(table.provider.table_type()),
                &table.provider.schema(),
            )
            .map_err(Status::from)?;
    }
    builder.build().map_err(Status::from)
}

pub fn table_types(command: CommandGetTableTypes) -> Result<RecordBatch, Status> {
    let mut builder = command.into_builder();
    for kind in ["LOCAL TEMPORARY", "TABLE", "VIEW"] {
        builder.append(kind);
    }
    builder.build().map_err(Status::from)
}
