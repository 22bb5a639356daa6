//! The Terracotta backend (feature `terracotta`): gridded results as
//! Cloud-Optimized GeoTIFFs registered in a Terracotta database, which
//! `terracotta serve` turns into map tiles, laid out as Python nuthatch's
//! `terracotta` backend lays them out.
//!
//! An entry is a folder, `<key>.terracotta/`, with one COG per time step,
//! `<time>.tif` (the time as numpy writes it), or `_.tif` for a grid
//! without time. Each is a dataset of the tier's Terracotta database under
//! the key `<cache key, / as _>_<time>` (the cache key alone without time),
//! with the metadata Terracotta computes. The database is the one the
//! tier's `terracotta` settings name, which take the `sql` backend's keys
//! (and, like Python, fall back on the location's shared `driver`, `host`,
//! ...): PostgreSQL for a shared store, or by default a SQLite file,
//! `terracotta.sqlite`, beside a tier that is a local folder. Two more
//! settings: `resampling_method` (nearest, average, bilinear or cubic) and
//! `override_path`, the folder a Terracotta server finds the files under
//! when it does not see them where they are written.
//!
//! The grid's dimensions are the definition's `dimensions`: `(time, lat,
//! lon)` or `(lat, lon)`, latitude then longitude last, named as the
//! function names them (Python's `latitude_dimension`, ... backend
//! arguments). Every other column is a band.
//!
//! The parts, each usable alone: [`mercator`] puts a regular
//! latitude/longitude grid onto Web Mercator, [`cog`] writes a raster as a
//! COG and [`tiff`] reads one back, [`metadata`] computes what Terracotta
//! records of a dataset, and [`database`] keeps Terracotta's tables.
//! [`write`] and [`read`] are the backend's two directions, and
//! [`datasets`] lists every tier's datasets as `nuthatch.terracotta`.
//!
//! Where this differs from Python nuthatch 0.4.11, deliberately: the Web
//! Mercator grid keeps the source's resolution (GDAL's suggested grid,
//! which Python gets, collapses a global grid to a few columns);
//! longitudes past 180 are wrapped (Python's code means to and fails);
//! a write replaces the entry's datasets exactly, and delete removes the
//! entry's keys only (Python's removes every key the entry's is a prefix
//! of); and an entry reads back as rows, where Python returns metadata.

pub mod cog;
pub mod database;
pub mod datasets;
pub mod mercator;
pub mod metadata;
pub mod read;
pub mod tiff;
pub mod write;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use object_store::ObjectStoreExt;

use crate::fidelity::Loss;
use crate::sql::database::{Database, Databases, SqlSettings};
use crate::{
    Backend, Commit, Layout, Location, Section, SystemTable, TierSettings, WriteOptions, Written,
};
use mercator::Resampling;

/// The SQLite file of a local tier's Terracotta database.
pub const SQLITE_FILE: &str = "terracotta.sqlite";

/// The file of a grid without time, as Python names it (`_.tif`).
const TIME_FREE_FILE: &str = "_";

/// The backend; it keeps the pools of every database it has been pointed
/// at, as the `sql` backend does.
#[derive(Debug, Default)]
pub struct TerracottaBackend {
    databases: Arc<Databases>,
}

/// The backend's settings on one tier.
#[derive(Clone, Default)]
pub struct TerracottaSettings {
    database: SqlSettings,
    resampling: Resampling,
    override_path: Option<String>,
}

impl TerracottaSettings {
    const OWN: [&'static str; 2] = ["resampling_method", "override_path"];

    fn read(section: Section<'_>) -> Result<TerracottaSettings> {
        let resampling = match section.get("resampling_method") {
            Some(text) => text.parse().map_err(|_| {
                section.invalid(
                    "resampling_method",
                    "nearest, average, bilinear or cubic",
                    text,
                )
            })?,
            None => Resampling::default(),
        };
        Ok(TerracottaSettings {
            database: SqlSettings::read(section)?,
            resampling,
            override_path: section.get("override_path").map(str::to_string),
        })
    }

    /// The path registered for `file` of the entry at `at`: under
    /// `override_path` when set, else where the file is (the local file's
    /// absolute path, or under the tier's URL, `s3://bucket/caches/...`, as
    /// Python registers it).
    fn registered(&self, at: &Location, file: &str) -> String {
        match (&self.override_path, &at.folder) {
            (Some(root), _) => format!("{}/{}/{file}", root.trim_end_matches('/'), at.path),
            (None, Some(folder)) => std::path::absolute(folder)
                .unwrap_or_else(|_| folder.clone())
                .join(at.path.as_ref())
                .join(file)
                .display()
                .to_string(),
            (None, None) => {
                let root = at.root.clone().unwrap_or_else(|| at.store_url.to_string());
                format!("{}/{}/{file}", root.trim_end_matches('/'), at.path)
            }
        }
    }
}

/// Which columns are the grid's time, latitude and longitude.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimensions {
    pub time: Option<String>,
    pub latitude: String,
    pub longitude: String,
}

impl Dimensions {
    const NEEDED: &'static str = "a terracotta entry is a grid over latitude and longitude, and \
         maybe time: name its dimensions with dimensions = (time, lat, lon) or (lat, lon), \
         latitude and longitude last (.dimensions([...]) in Rust)";

    /// The dimensions a definition declares, outermost first.
    fn declared(names: &[String], schema: &SchemaRef) -> Result<Dimensions> {
        let dimensions = match names {
            [latitude, longitude] => Dimensions {
                time: None,
                latitude: latitude.clone(),
                longitude: longitude.clone(),
            },
            [time, latitude, longitude] => Dimensions {
                time: Some(time.clone()),
                latitude: latitude.clone(),
                longitude: longitude.clone(),
            },
            _ => return plan_err!("{}", Self::NEEDED),
        };
        for name in dimensions.names() {
            if schema.field_with_name(name).is_err() {
                return plan_err!(
                    "the dimension {name} is not a column of the result; a terracotta grid \
                     needs a column for each of its dimensions"
                );
            }
        }
        Ok(dimensions)
    }

    /// The dimensions of a stored entry: those its rows were written in
    /// order of, or for an entry Python wrote (which records none), its
    /// defaults, `time`, `lat` and `lon`.
    fn stored(order: &[String], schema: &SchemaRef) -> Result<Dimensions> {
        if let Ok(dimensions) = Dimensions::declared(order, schema) {
            return Ok(dimensions);
        }
        let has = |name: &str| schema.field_with_name(name).is_ok();
        match has("time") {
            true => Dimensions::declared(&["time".into(), "lat".into(), "lon".into()], schema),
            false => Dimensions::declared(&["lat".into(), "lon".into()], schema),
        }
    }

    fn names(&self) -> impl Iterator<Item = &String> {
        self.time.iter().chain([&self.latitude, &self.longitude])
    }
}

impl TerracottaBackend {
    fn settings(at: &Location) -> TerracottaSettings {
        at.settings
            .get::<TerracottaSettings>()
            .cloned()
            .unwrap_or_default()
    }

    fn database(&self, at: &Location, settings: &TerracottaSettings) -> Result<Database> {
        Self::open_database(&self.databases, at, settings)
    }

    fn open_database(
        databases: &Databases,
        at: &Location,
        settings: &TerracottaSettings,
    ) -> Result<Database> {
        databases.open(
            Some(&settings.database),
            at.folder.as_ref(),
            "terracotta",
            SQLITE_FILE,
        )
    }
}

#[async_trait]
impl Backend for TerracottaBackend {
    fn name(&self) -> &'static str {
        "terracotta"
    }

    fn extension(&self) -> &'static str {
        "terracotta"
    }

    fn setting_names(&self) -> &'static [&'static str] {
        const NAMES: [&str; 12] = {
            let mut names = [""; 12];
            let mut i = 0;
            while i < SqlSettings::NAMES.len() {
                names[i] = SqlSettings::NAMES[i];
                i += 1;
            }
            names[10] = TerracottaSettings::OWN[0];
            names[11] = TerracottaSettings::OWN[1];
            names
        };
        &NAMES
    }

    fn configure(&self, section: Section<'_>) -> Result<TierSettings> {
        Ok(TierSettings::new(TerracottaSettings::read(section)?))
    }

    /// Files are replaced in place; the catalog hides the entry while they
    /// are.
    fn commit(&self) -> Commit {
        Commit::InPlace
    }

    fn grid(&self) -> bool {
        true
    }

    fn check_layout(&self, layout: &Layout<'_>) -> Result<()> {
        if !(2..=3).contains(&layout.dimensions.len()) {
            return plan_err!("{}", Dimensions::NEEDED);
        }
        if !layout.order.is_empty() || !layout.upsert_keys.is_empty() {
            return plan_err!(
                "a terracotta entry is stored as map tiles, in no row order and without \
                 merges; drop order_by and upsert keys, or store with another backend"
            );
        }
        Ok(())
    }

    /// Everything but time is resampled onto Web Mercator.
    fn losses(&self, _at: &Location, field: &Field) -> Vec<Loss> {
        match field.data_type() {
            t if t.is_temporal() => vec![Loss::BeyondYears],
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Vec::new(),
            _ => vec![Loss::Resampled],
        }
    }

    async fn open(
        &self,
        at: &Location,
        schema: SchemaRef,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let files = write::stored_files(at).await?;
        if files.is_empty() {
            return Ok(None);
        }
        let dimensions = Dimensions::stored(&at.sort_order, &schema)?;
        let table = read::TerracottaTable::new(at, schema, dimensions, files)?;
        Ok(Some(Arc::new(table)))
    }

    async fn write(
        &self,
        at: &Location,
        data: SendableRecordBatchStream,
        options: &WriteOptions,
    ) -> Result<Written> {
        let settings = Self::settings(at);
        let database = self.database(at, &settings)?;
        write::write(at, &settings, &database, data, options).await
    }

    fn system_table(&self, tiers: Vec<(String, Location)>) -> Option<SystemTable> {
        let table = datasets::DatasetsTable::new(tiers, Arc::clone(&self.databases));
        Some((datasets::NAME, Arc::new(table)))
    }

    /// Registers the datasets of files an import copied here, with the
    /// metadata computed from the files as written.
    async fn adopt(&self, at: &Location) -> Result<()> {
        let settings = Self::settings(at);
        let database = self.database(at, &settings)?;
        let mut datasets = Vec::new();
        for file in write::stored_files(at).await? {
            let path = at.path.clone().join(file.as_str());
            let bytes = (at.store.get(&path).await)
                .map_err(|e| DataFusionError::External(Box::new(e)))?
                .bytes()
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let raster = tiff::read(&bytes, path.as_ref())?;
            datasets.push(database::Dataset {
                key: write::dataset_key(at, &file),
                path: settings.registered(at, &file),
                metadata: metadata::Metadata::of(&raster)?,
            });
        }
        database::prepare(&database.pools).await?;
        database::register(&database.pools, &datasets, &[]).await
    }

    /// Removes the entry's datasets from the database, then its files.
    async fn delete(&self, at: &Location) -> Result<()> {
        let files = write::stored_files(at).await?;
        if files.is_empty() {
            return Ok(());
        }
        let settings = Self::settings(at);
        let database = self.database(at, &settings)?;
        let keys: Vec<String> = files.iter().map(|f| write::dataset_key(at, f)).collect();
        database::prepare(&database.pools).await?;
        database::register(&database.pools, &[], &keys).await?;
        for file in files {
            at.store
                .delete(&at.path.clone().join(file.as_str()))
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::datasource::object_store::ObjectStoreUrl;
    use object_store::memory::InMemory;

    #[test]
    fn datasets_are_registered_where_a_server_finds_their_files() {
        let mut at = Location::new(
            Arc::new(InMemory::new()),
            ObjectStoreUrl::parse("s3://team-bucket").unwrap(),
            object_store::path::Path::from("trial/maps/7.terracotta"),
        );
        at.key = "maps/7".into();
        at.root = Some("s3://team-bucket/caches/".into());
        let settings = TerracottaSettings::default();
        let file = "2013-07-01T00:00:00.000000000.tif";
        assert_eq!(
            settings.registered(&at, file),
            format!("s3://team-bucket/caches/trial/maps/7.terracotta/{file}")
        );
        let mounted = TerracottaSettings {
            override_path: Some("/mnt/caches/".into()),
            ..TerracottaSettings::default()
        };
        assert_eq!(
            mounted.registered(&at, file),
            format!("/mnt/caches/trial/maps/7.terracotta/{file}")
        );
        at.folder = Some("/data/caches".into());
        assert_eq!(
            settings.registered(&at, file),
            format!("/data/caches/trial/maps/7.terracotta/{file}")
        );
        assert_eq!(
            write::dataset_key(&at, file),
            "maps_7_2013-07-01T00:00:00.000000000"
        );
        assert_eq!(write::dataset_key(&at, "_.tif"), "maps_7");
    }
}
