//! A storage format written outside nuthatch's crates: JSON lines, one
//! object per row, stored as `<key>.jsonl`.
//!
//! Everything a format needs is the [`Backend`] trait: a name and an
//! extension, how to write a result stream, how to open what is stored as a
//! DataFusion table, how to delete it, and, optionally, its settings on a
//! tier and what it stores other than as given. Keys, tiers, metadata,
//! modes, listing and `DELETE` are the catalog's, and work unchanged.
//!
//! The file is written with one `put`, which object stores and local
//! folders make visible at once, so the default [`Commit::Atomic`] holds:
//! a reader sees the previous entry or the new one. Reading goes through
//! DataFusion's own JSON scan, which projects and stops at a `LIMIT`.
//!
//! [`Commit::Atomic`]: nuthatch::Commit::Atomic

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::json::writer::{LineDelimited, WriterBuilder};
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::common::Result;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use nuthatch::crates::backends::fidelity::Loss;
use nuthatch::{Backend, Location, Section, TierSettings, WriteOptions, Written};
use object_store::ObjectStoreExt;

/// The format; register it with
/// `Engine::with_backends(&config, Backends::builtin().with(Arc::new(JsonLines)))`.
#[derive(Debug, Default)]
pub struct JsonLines;

/// What a tier's `[root.jsonl]` section may set, read once when the tier
/// opens.
#[derive(Debug, Clone, Default)]
pub struct JsonLinesSettings {
    /// Write `"col": null` for missing values rather than leave the key
    /// out (`explicit_nulls = true`); readers that expect every key want it.
    pub explicit_nulls: bool,
}

#[async_trait]
impl Backend for JsonLines {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    fn extension(&self) -> &'static str {
        "jsonl"
    }

    fn setting_names(&self) -> &'static [&'static str] {
        &["explicit_nulls"]
    }

    fn configure(&self, section: Section<'_>) -> Result<TierSettings> {
        let explicit_nulls = match section.get("explicit_nulls") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(section.invalid("explicit_nulls", "true or false", other)),
        };
        Ok(TierSettings::new(JsonLinesSettings { explicit_nulls }))
    }

    /// JSON has no NaN: the writer leaves it out, so it reads back as null.
    fn losses(&self, _at: &Location, field: &Field) -> Vec<Loss> {
        match field.data_type() {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => vec![Loss::NanAsNull],
            _ => Vec::new(),
        }
    }

    async fn open(
        &self,
        at: &Location,
        schema: SchemaRef,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        match at.store.head(&at.path).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        // The catalog registers each tier's store in the runtime under
        // `store_url`, so DataFusion's own scan reaches the file.
        let url = ListingTableUrl::parse(format!("{}{}", at.store_url.as_str(), at.path))?;
        let options = ListingOptions::new(Arc::new(JsonFormat::default()))
            .with_file_extension(self.extension());
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        Ok(Some(Arc::new(ListingTable::try_new(config)?)))
    }

    async fn write(
        &self,
        at: &Location,
        mut data: SendableRecordBatchStream,
        options: &WriteOptions,
    ) -> Result<Written> {
        let settings = at.settings.get::<JsonLinesSettings>().cloned();
        let explicit_nulls = settings.unwrap_or_default().explicit_nulls;
        let mut writer = WriterBuilder::new()
            .with_explicit_nulls(explicit_nulls)
            .build::<_, LineDelimited>(Vec::new());
        let mut rows = 0;
        while let Some(batch) = data.next().await {
            // A failed stream returns before anything is stored.
            let batch = batch?;
            writer.write(&batch)?;
            rows += batch.num_rows() as u64;
            if let Some(progress) = &options.progress {
                progress.rows.fetch_add(
                    batch.num_rows() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        }
        writer.finish()?;
        let bytes = writer.into_inner();
        let size = bytes.len() as u64;
        at.store.put(&at.path, bytes.into()).await?;
        Ok(Written {
            rows,
            bytes: size,
            parts: 1,
            ..Written::default()
        })
    }

    async fn delete(&self, at: &Location) -> Result<()> {
        match at.store.delete(&at.path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
