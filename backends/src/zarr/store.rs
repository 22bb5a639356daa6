//! Opening a Zarr store: its arrays, their dimensions and how to decode
//! them, from as few requests as the store allows.
//!
//! In order: a Zarr v3 root `zarr.json` with inline consolidated metadata
//! (what xarray writes with zarr-python 3, and what we write) costs one GET;
//! a v3 root without it costs a LIST and a GET per array; a Zarr v2 store
//! is read from `.zmetadata` when consolidated (one GET; zarrs does not read
//! that file, so it is parsed here) or array by array from `.zarray` and
//! `.zattrs`. Every failure names the file and what to do.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Map, Value};
use zarrs::array::{Array, ArrayMetadata};
use zarrs::metadata::v2::ArrayMetadataV2;
use zarrs::metadata::v3::ArrayMetadataV3;
use zarrs::storage::AsyncReadableWritableListableStorageTraits;

use super::cf::{self, Decoding};

pub type ZarrArray = Array<dyn AsyncReadableWritableListableStorageTraits>;

/// One array of a store, ready to read.
pub struct StoredArray {
    pub name: String,
    pub array: Arc<ZarrArray>,
    pub dimensions: Vec<String>,
    pub decoding: Decoding,
}

impl std::fmt::Debug for StoredArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredArray")
            .field("name", &self.name)
            .field("shape", &self.array.shape())
            .field("dimensions", &self.dimensions)
            .field("decoding", &self.decoding)
            .finish()
    }
}

/// A store's arrays by name.
#[derive(Debug)]
pub struct OpenedStore {
    pub arrays: BTreeMap<String, StoredArray>,
    /// `zarr.json` (v3) or `.zmetadata`/`.zgroup` (v2), for messages.
    pub format: &'static str,
}

/// A failure to read a store's metadata, naming the file.
fn corrupt(file: &Path, detail: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!(
        "the Zarr metadata file {file} cannot be read: {detail}. Delete the entry \
         (DELETE FROM nuthatch.caches WHERE ...), or recompute it with \
         cache_mode => 'overwrite', recompute => true"
    ))
}

async fn get_json(store: &dyn ObjectStore, file: &Path) -> Result<Option<Value>> {
    let bytes = match store.get(file).await {
        Ok(got) => got.bytes().await.map_err(|e| corrupt(file, e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(DataFusionError::External(Box::new(e))),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| corrupt(file, format!("it is not valid JSON ({e})")))
}

/// Opens the store under `prefix`; `None` when no Zarr store is there.
pub async fn open(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    storage: Arc<dyn AsyncReadableWritableListableStorageTraits>,
) -> Result<Option<OpenedStore>> {
    let root = prefix.clone().join("zarr.json");
    if let Some(group) = get_json(store.as_ref(), &root).await? {
        let consolidated = group
            .get("consolidated_metadata")
            .and_then(|c| c.get("metadata"))
            .and_then(Value::as_object);
        let mut nodes: Vec<(String, Value)> = Vec::new();
        match consolidated {
            Some(metadata) => {
                for (name, node) in metadata {
                    nodes.push((name.trim_start_matches('/').to_string(), node.clone()));
                }
            }
            None => {
                if group.get("node_type").and_then(Value::as_str) != Some("group") {
                    return Err(corrupt(&root, "it does not describe a group (node_type)"));
                }
                for name in child_names(store.as_ref(), prefix).await? {
                    let file = prefix.clone().join(name.as_str()).join("zarr.json");
                    if let Some(node) = get_json(store.as_ref(), &file).await? {
                        nodes.push((name, node));
                    }
                }
            }
        }
        let mut arrays = BTreeMap::new();
        for (name, node) in nodes {
            // Nested groups and their arrays are not columns of this table.
            if name.contains('/') || node.get("node_type").and_then(Value::as_str) != Some("array")
            {
                continue;
            }
            let file = prefix.clone().join(name.as_str()).join("zarr.json");
            let metadata: ArrayMetadataV3 =
                serde_json::from_value(node).map_err(|e| corrupt(&file, e))?;
            let array = build(&storage, &name, ArrayMetadata::V3(metadata), &file)?;
            // In v3 only the _FillValue attribute masks.
            arrays.insert(name.clone(), describe(name, array, &file, None)?);
        }
        return Ok(Some(OpenedStore {
            arrays,
            format: "zarr.json",
        }));
    }

    // Zarr v2.
    let consolidated_file = prefix.clone().join(".zmetadata");
    let mut parts: BTreeMap<String, (Option<Value>, Option<Value>)> = BTreeMap::new();
    let format = if let Some(consolidated) = get_json(store.as_ref(), &consolidated_file).await? {
        let metadata = consolidated
            .get("metadata")
            .and_then(Value::as_object)
            .ok_or_else(|| corrupt(&consolidated_file, "it has no \"metadata\" object"))?;
        for (key, value) in metadata {
            if let Some(name) = key.strip_suffix("/.zarray") {
                parts.entry(name.to_string()).or_default().0 = Some(value.clone());
            } else if let Some(name) = key.strip_suffix("/.zattrs") {
                parts.entry(name.to_string()).or_default().1 = Some(value.clone());
            }
        }
        ".zmetadata"
    } else if store.head(&prefix.clone().join(".zgroup")).await.is_ok() {
        for name in child_names(store.as_ref(), prefix).await? {
            let file = prefix.clone().join(name.as_str()).join(".zarray");
            if let Some(zarray) = get_json(store.as_ref(), &file).await? {
                let attrs_file = prefix.clone().join(name.as_str()).join(".zattrs");
                let zattrs = get_json(store.as_ref(), &attrs_file).await?;
                parts.insert(name, (Some(zarray), zattrs));
            }
        }
        ".zgroup"
    } else {
        return Ok(None);
    };
    let mut arrays = BTreeMap::new();
    for (name, (zarray, zattrs)) in parts {
        let Some(zarray) = zarray else { continue };
        if name.contains('/') {
            continue;
        }
        let file = prefix.clone().join(name.as_str()).join(".zarray");
        let mut metadata: ArrayMetadataV2 =
            serde_json::from_value(zarray).map_err(|e| corrupt(&file, e))?;
        if let Some(Value::Object(attributes)) = zattrs {
            metadata.attributes = attributes;
        }
        // xarray masks with a v2 array's own fill value, unless it is null.
        let fill = serde_json::to_value(&metadata.fill_value)
            .ok()
            .and_then(|v| v.as_f64());
        let array = build(&storage, &name, ArrayMetadata::V2(metadata), &file)?;
        arrays.insert(name.clone(), describe(name, array, &file, fill)?);
    }
    Ok(Some(OpenedStore { arrays, format }))
}

/// The names of the folders directly under `prefix`.
async fn child_names(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<String>> {
    let listed = store
        .list_with_delimiter(Some(prefix))
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(listed
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .collect())
}

fn build(
    storage: &Arc<dyn AsyncReadableWritableListableStorageTraits>,
    name: &str,
    metadata: ArrayMetadata,
    file: &Path,
) -> Result<ZarrArray> {
    Array::new_with_metadata(Arc::clone(storage), &format!("/{name}"), metadata).map_err(|e| {
        DataFusionError::Execution(format!(
            "the Zarr array '{name}' ({file}) cannot be read: {e}. Supported codecs: bytes, \
             zstd, blosc, gzip, crc32c, transpose, sharding_indexed"
        ))
    })
}

/// Dimension names and CF decoding of one array.
fn describe(
    name: String,
    array: ZarrArray,
    file: &Path,
    zarr_fill: Option<f64>,
) -> Result<StoredArray> {
    let attributes: &Map<String, Value> = array.attributes();
    let from_attribute = attributes
        .get("_ARRAY_DIMENSIONS")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .map(|n| n.as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        });
    let dimensions = match (array.dimension_names(), from_attribute) {
        (Some(names), _) if names.iter().all(Option::is_some) => names
            .iter()
            .map(|n| n.clone().unwrap_or_default())
            .collect(),
        (_, Some(names)) => names,
        _ if array.shape().len() == 1 => vec![name.clone()],
        _ => {
            return Err(DataFusionError::Execution(format!(
                "the Zarr array '{name}' ({file}) does not name its dimensions \
                 (dimension_names, or the _ARRAY_DIMENSIONS attribute xarray writes)"
            )))
        }
    };
    if dimensions.len() != array.shape().len() {
        return Err(corrupt(
            file,
            format!(
                "it names {} dimensions for an array of {}",
                dimensions.len(),
                array.shape().len()
            ),
        ));
    }
    let decoding = cf::decoding(&name, attributes, zarr_fill)?;
    Ok(StoredArray {
        name,
        array: Arc::new(array),
        dimensions,
        decoding,
    })
}
