//! SQLite through its C API, for the two bulk paths: reading a table into
//! Arrow and loading rows into one.
//!
//! sqlx runs each SQLite connection on a worker thread and hands every row
//! over as an owned copy of its values, and its loads bind values into
//! boxed arguments; on a table of millions of rows those copies cost far
//! more than SQLite's own work. Here the connection stays in sqlx's pool
//! (its settings, its transactions), but for the length of one bulk
//! operation its handle is locked out of the worker
//! (`SqliteConnection::lock_handle`) and driven directly: one prepared
//! statement stepped row by row, values decoded straight into Arrow
//! builders, or bound straight from Arrow arrays, with no per-value
//! allocation. This is what the ADBC SQLite driver does, in Rust.
//!
//! The unsafe code is confined to [`Statement`], which owns one prepared
//! statement and is only made while its connection's handle is locked.

use std::ffi::{c_char, c_int, CStr};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use arrow::array::{
    Array, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use libsqlite3_sys as ffi;
use sqlx::sqlite::LockedSqliteHandle;

use super::filter::Param;
use super::types::{
    parse_sqlite_date, parse_sqlite_timestamp, write_sqlite_date, write_sqlite_timestamp, Builder,
};

/// One prepared statement on a locked connection handle; finalized when
/// dropped. The lifetime ties it to the lock, so it cannot outlive it.
pub struct Statement<'lock> {
    raw: NonNull<ffi::sqlite3_stmt>,
    db: NonNull<ffi::sqlite3>,
    _lock: PhantomData<&'lock mut ()>,
}

// The statement is only used by whoever holds the connection's lock, one
// call at a time, from whichever thread that holder runs on; SQLite
// connections opened by sqlx are in serialized or multi-thread mode, which
// allows that.
unsafe impl Send for Statement<'_> {}

impl<'lock> Statement<'lock> {
    /// Prepares `sql` on the locked connection.
    pub fn prepare(handle: &'lock mut LockedSqliteHandle<'_>, sql: &str) -> Result<Self, String> {
        let db = handle.as_raw_handle();
        let length = c_int::try_from(sql.len()).map_err(|_| "the statement is too long")?;
        let mut raw = ptr::null_mut();
        // SAFETY: db is a live connection whose lock we hold; sql is valid
        // for `length` bytes; raw receives the statement or stays null.
        let code = unsafe {
            ffi::sqlite3_prepare_v3(
                db.as_ptr(),
                sql.as_ptr().cast::<c_char>(),
                length,
                ffi::SQLITE_PREPARE_PERSISTENT as _,
                &mut raw,
                ptr::null_mut(),
            )
        };
        if code != ffi::SQLITE_OK {
            return Err(message(db));
        }
        let raw = NonNull::new(raw).ok_or("the statement is empty")?;
        Ok(Statement {
            raw,
            db,
            _lock: PhantomData,
        })
    }

    fn check(&self, code: c_int) -> Result<(), String> {
        if code == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(message(self.db))
        }
    }

    /// Binds a filter's value to placeholder `index` (from 1).
    pub fn bind_param(&mut self, index: usize, param: &Param) -> Result<(), String> {
        match param.for_sqlite() {
            Param::Int(v) => self.bind_int(index, v),
            Param::Float(v) => self.bind_float(index, v),
            Param::Text(v) => self.bind_text(index, v.as_bytes(), true),
            Param::Bytes(v) => self.bind_blob(index, &v, true),
            other => unreachable!("for_sqlite leaves no {other:?}"),
        }
    }

    fn bind_int(&mut self, index: usize, value: i64) -> Result<(), String> {
        // SAFETY: a live statement; SQLite checks the index.
        self.check(unsafe { ffi::sqlite3_bind_int64(self.raw.as_ptr(), index as c_int, value) })
    }

    fn bind_float(&mut self, index: usize, value: f64) -> Result<(), String> {
        // SAFETY: as bind_int.
        self.check(unsafe { ffi::sqlite3_bind_double(self.raw.as_ptr(), index as c_int, value) })
    }

    fn bind_null(&mut self, index: usize) -> Result<(), String> {
        // SAFETY: as bind_int.
        self.check(unsafe { ffi::sqlite3_bind_null(self.raw.as_ptr(), index as c_int) })
    }

    /// Binds text; `copy` makes SQLite keep its own copy, otherwise the
    /// bytes must stay valid until the next bind of this index or reset.
    fn bind_text(&mut self, index: usize, value: &[u8], copy: bool) -> Result<(), String> {
        let length = c_int::try_from(value.len()).map_err(|_| "a text value is over 2 GiB")?;
        let keep = if copy {
            ffi::SQLITE_TRANSIENT()
        } else {
            ffi::SQLITE_STATIC()
        };
        // SAFETY: value is valid for `length` bytes for as long as `keep`
        // promises (the caller's contract for SQLITE_STATIC).
        self.check(unsafe {
            ffi::sqlite3_bind_text(
                self.raw.as_ptr(),
                index as c_int,
                value.as_ptr().cast::<c_char>(),
                length,
                keep,
            )
        })
    }

    /// Binds a blob; `copy` as for [`Statement::bind_text`].
    fn bind_blob(&mut self, index: usize, value: &[u8], copy: bool) -> Result<(), String> {
        let length = c_int::try_from(value.len()).map_err(|_| "a binary value is over 2 GiB")?;
        let keep = if copy {
            ffi::SQLITE_TRANSIENT()
        } else {
            ffi::SQLITE_STATIC()
        };
        // SAFETY: as bind_text.
        self.check(unsafe {
            ffi::sqlite3_bind_blob(
                self.raw.as_ptr(),
                index as c_int,
                value.as_ptr().cast(),
                length,
                keep,
            )
        })
    }

    /// Runs the statement to its next row: `true` when there is one.
    pub fn step(&mut self) -> Result<bool, String> {
        // SAFETY: a live statement.
        match unsafe { ffi::sqlite3_step(self.raw.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            _ => Err(message(self.db)),
        }
    }

    /// Makes the statement ready to run again with new values.
    fn reset(&mut self) -> Result<(), String> {
        // SAFETY: a live statement.
        self.check(unsafe { ffi::sqlite3_reset(self.raw.as_ptr()) })
    }

    fn is_null(&self, column: usize) -> bool {
        // SAFETY: a live statement on a row; SQLite checks the index.
        unsafe { ffi::sqlite3_column_type(self.raw.as_ptr(), column as c_int) == ffi::SQLITE_NULL }
    }

    fn int(&self, column: usize) -> i64 {
        // SAFETY: as is_null.
        unsafe { ffi::sqlite3_column_int64(self.raw.as_ptr(), column as c_int) }
    }

    fn float(&self, column: usize) -> f64 {
        // SAFETY: as is_null.
        unsafe { ffi::sqlite3_column_double(self.raw.as_ptr(), column as c_int) }
    }

    /// The value as text (SQLite converts numbers), valid until the next
    /// step or conversion of this column.
    fn text(&self, column: usize) -> &[u8] {
        // SAFETY: SQLite returns a pointer to `bytes` bytes that live until
        // the statement moves on, which needs `&mut self`; the length is
        // asked after the text, as SQLite's documentation requires.
        unsafe {
            let data = ffi::sqlite3_column_text(self.raw.as_ptr(), column as c_int);
            let bytes = ffi::sqlite3_column_bytes(self.raw.as_ptr(), column as c_int);
            if data.is_null() || bytes <= 0 {
                return &[];
            }
            std::slice::from_raw_parts(data, bytes as usize)
        }
    }

    /// The value as a blob, valid as for [`Statement::text`].
    fn blob(&self, column: usize) -> &[u8] {
        // SAFETY: as text.
        unsafe {
            let data = ffi::sqlite3_column_blob(self.raw.as_ptr(), column as c_int);
            let bytes = ffi::sqlite3_column_bytes(self.raw.as_ptr(), column as c_int);
            if data.is_null() || bytes <= 0 {
                return &[];
            }
            std::slice::from_raw_parts(data.cast::<u8>(), bytes as usize)
        }
    }

    /// Appends column `column` of the current row to `builder`, converted
    /// to its wire type as SQLite converts values.
    pub fn append(&self, builder: &mut Builder, column: usize) -> Result<(), String> {
        if self.is_null(column) {
            builder.push_null();
            return Ok(());
        }
        match builder {
            Builder::Bool(b) => b.append_value(self.int(column) != 0),
            Builder::Int64(b) => b.append_value(self.int(column)),
            Builder::Float64(b) => b.append_value(self.float(column)),
            Builder::Text(b) => b.append_value(
                std::str::from_utf8(self.text(column)).map_err(|_| "a text value is not UTF-8")?,
            ),
            Builder::Bytes(b) => b.append_value(self.blob(column)),
            Builder::Date(b) => b.append_value(parse_sqlite_date(self.text(column))?),
            Builder::Timestamp(b) | Builder::TimestampUtc(b) => {
                b.append_value(parse_sqlite_timestamp(self.text(column))?)
            }
            Builder::Int16(_) | Builder::Int32(_) | Builder::Float32(_) => {
                unreachable!("SQLite columns are read as 64-bit numbers")
            }
        }
        Ok(())
    }

    /// Inserts every row of a wire-typed `batch`, the statement being an
    /// `INSERT` with one placeholder per column, in column order.
    pub fn insert_rows(&mut self, batch: &RecordBatch) -> Result<(), String> {
        let columns = batch.columns();
        // Text forms of dates and times, one per column, bound without a
        // copy: each lives until its column is bound again.
        let mut times = vec![[0u8; 26]; columns.len()];
        for row in 0..batch.num_rows() {
            for (i, column) in columns.iter().enumerate() {
                self.bind_cell(i + 1, column.as_ref(), row, &mut times[i])?;
            }
            self.step()?;
            self.reset()?;
        }
        // Values were bound without a copy from `batch` and `times`, which
        // end here: no binding may outlive them.
        // SAFETY: a live statement, not running.
        self.check(unsafe { ffi::sqlite3_clear_bindings(self.raw.as_ptr()) })
    }

    fn bind_cell(
        &mut self,
        index: usize,
        column: &dyn Array,
        row: usize,
        time: &mut [u8; 26],
    ) -> Result<(), String> {
        if column.is_null(row) {
            return self.bind_null(index);
        }
        match column.data_type() {
            DataType::Boolean => {
                self.bind_int(index, downcast::<BooleanArray>(column).value(row) as i64)
            }
            DataType::Int16 => {
                self.bind_int(index, downcast::<Int16Array>(column).value(row) as i64)
            }
            DataType::Int32 => {
                self.bind_int(index, downcast::<Int32Array>(column).value(row) as i64)
            }
            DataType::Int64 => self.bind_int(index, downcast::<Int64Array>(column).value(row)),
            DataType::Float32 => {
                self.bind_float(index, downcast::<Float32Array>(column).value(row) as f64)
            }
            DataType::Float64 => {
                self.bind_float(index, downcast::<Float64Array>(column).value(row))
            }
            DataType::Utf8 => {
                let value = downcast::<StringArray>(column).value(row);
                // The array outlives the step this value is bound for.
                self.bind_text(index, value.as_bytes(), false)
            }
            DataType::Binary => {
                self.bind_blob(index, downcast::<BinaryArray>(column).value(row), false)
            }
            DataType::Date32 => {
                let days = downcast::<Date32Array>(column).value(row);
                let length = write_sqlite_date(days, time)?;
                // No copy: `time` is the caller's and outlives the step.
                self.bind_text(index, &time[..length], false)
            }
            DataType::Timestamp(_, _) => {
                let micros = downcast::<TimestampMicrosecondArray>(column).value(row);
                write_sqlite_timestamp(micros, time)?;
                self.bind_text(index, &time[..], false)
            }
            other => unreachable!("{other} is not a wire type"),
        }
    }
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized once.
        unsafe {
            ffi::sqlite3_finalize(self.raw.as_ptr());
        }
    }
}

/// The connection's last error message.
fn message(db: NonNull<ffi::sqlite3>) -> String {
    // SAFETY: SQLite returns a NUL-terminated string it owns, valid until
    // the next call on the connection; it is copied at once.
    unsafe {
        let text = ffi::sqlite3_errmsg(db.as_ptr());
        if text.is_null() {
            return "unknown SQLite error".into();
        }
        CStr::from_ptr(text).to_string_lossy().into_owned()
    }
}

fn downcast<T: 'static>(column: &dyn Array) -> &T {
    column
        .as_any()
        .downcast_ref::<T>()
        .expect("a wire-typed column")
}
