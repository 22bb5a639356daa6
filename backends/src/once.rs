//! A record batch stream as a table that can be scanned once.
//!
//! Results arrive as streams (a body's output, a result on its way into a
//! backend), while DataFusion and delta-rs take their input as tables. The
//! stream becomes the only partition of a [`StreamingTable`]; a second scan
//! gets an error instead of a silent empty result, since the rows are gone.

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

/// `stream` as a one-partition table whose first scan serves it.
pub fn table_once(stream: SendableRecordBatchStream) -> Result<Arc<StreamingTable>> {
    let schema = stream.schema();
    Ok(Arc::new(StreamingTable::try_new(
        schema,
        vec![partition_once(stream)],
    )?))
}

/// `stream` as a partition whose first execution serves it, for a
/// `StreamingTable` or a `StreamingTableExec` of several.
pub fn partition_once(stream: SendableRecordBatchStream) -> Arc<dyn PartitionStream> {
    Arc::new(Once {
        schema: stream.schema(),
        stream: Mutex::new(Some(stream)),
    })
}

struct Once {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for Once {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Once")
    }
}

impl PartitionStream for Once {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().map(|mut slot| slot.take());
        match taken {
            Ok(Some(stream)) => stream,
            _ => {
                let error = DataFusionError::Execution(
                    "a streamed result can be read only once; it was read already".into(),
                );
                Box::pin(RecordBatchStreamAdapter::new(
                    Arc::clone(&self.schema),
                    futures::stream::once(async move { Err(error) }),
                ))
            }
        }
    }
}
