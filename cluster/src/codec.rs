//! How nuthatch's own operators travel to workers: the scan of a call
//! resolved here ([`ServedCallExec`]) and the writer of a part of an entry
//! ([`PartWriterExec`]). Everything under them travels as DataFusion's own
//! plans do; what is encoded here is only what they add. A worker decodes
//! with its own formats, by name, and its own object stores, by URL: the
//! same configuration as the coordinator's gives the same ones.

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use nuthatch_backends::Backends;
use nuthatch_udf::parallel::{PartWriterExec, PartsTarget};
use object_store::path::Path;

use crate::served::ServedCallExec;

/// The first byte of an encoded operator: which one it is.
const SERVED_CALL: u8 = 1;
const PART_WRITER: u8 = 2;

/// Encodes and decodes nuthatch's operators (module docs).
#[derive(Debug)]
pub struct NuthatchCodec {
    backends: Backends,
}

impl NuthatchCodec {
    /// Decoding with `backends`, the formats this process knows.
    pub fn new(backends: Backends) -> NuthatchCodec {
        NuthatchCodec { backends }
    }
}

impl PhysicalExtensionCodec for NuthatchCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let malformed = || DataFusionError::Internal("a nuthatch operator is malformed".into());
        let (&tag, rest) = buf.split_first().ok_or_else(malformed)?;
        let text = std::str::from_utf8(rest).map_err(|_| malformed())?;
        let [input] = inputs else {
            return Err(malformed());
        };
        let input = Arc::clone(input);
        match tag {
            SERVED_CALL => Ok(Arc::new(ServedCallExec::new(text.to_string(), input))),
            PART_WRITER => {
                let fields: Vec<&str> = text.split('\n').collect();
                let [backend, store_url, path, time_column] = fields.as_slice() else {
                    return Err(malformed());
                };
                let backend = self.backends.get(backend).ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "this worker has no {backend} backend; build it with the same \
                         backends as the coordinator"
                    ))
                })?;
                let target = PartsTarget {
                    backend: Arc::clone(backend),
                    store_url: ObjectStoreUrl::parse(store_url)?,
                    path: Path::from(*path),
                    time_column: (!time_column.is_empty()).then(|| time_column.to_string()),
                };
                Ok(Arc::new(PartWriterExec::new(input, target)))
            }
            _ => Err(malformed()),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if let Some(served) = node.downcast_ref::<ServedCallExec>() {
            buf.push(SERVED_CALL);
            buf.extend_from_slice(served.label.as_bytes());
            return Ok(());
        }
        if let Some(writer) = node.downcast_ref::<PartWriterExec>() {
            let target = writer.target();
            let fields = [
                target.backend.name(),
                target.store_url.as_str(),
                target.path.as_ref(),
                target.time_column.as_deref().unwrap_or(""),
            ];
            buf.push(PART_WRITER);
            buf.extend_from_slice(fields.join("\n").as_bytes());
            return Ok(());
        }
        Err(DataFusionError::NotImplemented(format!(
            "{} cannot be sent to a worker",
            node.name()
        )))
    }
}
