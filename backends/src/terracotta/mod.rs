//! Terracotta: gridded results as Cloud-Optimized GeoTIFFs registered in a
//! Terracotta database, which `terracotta serve` turns into map tiles, laid
//! out as Python nuthatch's `terracotta` backend lays them out.
//!
//! The parts, each usable alone: [`mercator`] puts a regular
//! latitude/longitude grid onto Web Mercator, [`cog`] writes a raster as a
//! COG, [`metadata`] computes what Terracotta records of it, and
//! [`database`] keeps Terracotta's tables (in the database the SQL
//! backend's settings name). The backend over them (one COG per time step,
//! the database rows committed last) is being built on these (issue #37).

pub mod cog;
pub mod database;
pub mod mercator;
pub mod metadata;
