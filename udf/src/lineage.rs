//! What a compute reads, noted for the lineage of the entry it makes
//! ([`nuthatch_catalog::lineage`]).
//!
//! Entries are noted by the calls that serve them, into the frame of the
//! call whose body made them (`resolve::note_read`). Files are noted here,
//! from the compute's physical plan before it runs: each file a scan of the
//! plan was handed, with the size, modification time and ETag its listing
//! saw, which is what can be observed of it later without reading it. The
//! scans inside cached calls are entries, noted by those calls, and are
//! skipped.

use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use nuthatch_catalog::{Input, Reads};

use crate::exec::CachedCallExec;

/// Plans of cached calls served on a cluster's workers (the cluster
/// crate's), which are entries too.
const SERVED_CALL: &str = "ServedCallExec";

/// Notes in `reads` every file `plan` scans outside cached calls.
pub fn note_files(plan: &std::sync::Arc<dyn ExecutionPlan>, reads: &Reads) {
    if plan.downcast_ref::<CachedCallExec>().is_some() || plan.name() == SERVED_CALL {
        return;
    }
    if let Some(scan) = plan.downcast_ref::<DataSourceExec>() {
        if let Some(files) = scan.data_source().downcast_ref::<FileScanConfig>() {
            // `file:///` or `s3://bucket/`: the location follows the slash.
            let store = files.object_store_url.as_str();
            let store = store.strip_suffix('/').unwrap_or(store);
            for file in files.file_groups.iter().flat_map(|group| group.files()) {
                let meta = &file.object_meta;
                reads.note(Input::File(nuthatch_catalog::lineage::InputFile {
                    url: format!("{store}/{}", meta.location),
                    size: meta.size,
                    modified: meta.last_modified.timestamp_micros(),
                    etag: meta.e_tag.clone(),
                }));
            }
        }
    }
    for child in plan.children() {
        note_files(child, reads);
    }
}
